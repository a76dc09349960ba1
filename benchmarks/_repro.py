"""Shared machinery of the reproduction scripts (``reproduce_*.py``).

Several models are trained side by side, one epoch of each in turn, so that
their epoch times are measured under the same conditions and an interrupted
run has made the same progress on every model. After every epoch a model is
checkpointed (``last.keras``, which holds the optimizer state too, and
``state.json``, written atomically); started again with the same folder, a
run goes on from the last finished epoch. The training batches of epoch
``e`` come from a pipeline seeded with ``(seed, e)``, so a resumed run sees
the same batches as an uninterrupted one.

The epoch and the decoding threshold are chosen on the validation set only
(``best.keras`` + the threshold in ``state.json``); the test set is scored
once, with that model and that threshold, when training has finished.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from keras_symconv.tasks import MODEL_KINDS, TASKS, build_model
from keras_symconv.training import THRESHOLDS, choose_threshold, prior_logit  # noqa: F401

#: The model kinds, in the order the reproductions train and report them.
MODELS = tuple(sorted(MODEL_KINDS))


def add_run_arguments(parser, name, epochs, crop, paper_crop):
    """The options every reproduction script has (checkpoints in ``~/.cache``)."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = parser
    p.add_argument(
        "--work",
        default=os.path.expanduser(f"~/.cache/keras-symconv/reproduce_{name}"),
        help="checkpoint folder (outside the repository; reuse it to resume)",
    )
    p.add_argument("--out", default=os.path.join(here, "results", name), help="report folder")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--crop", type=int, default=crop, help=f"training window (paper: {paper_crop})")
    p.add_argument("--batch-size", type=int, default=10, help="paper: 10")
    p.add_argument("--positive-weight", type=float, default=5.0, help="paper: 5")
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=0.9,
        help="batch-norm momentum (as the symconv tool; Keras' 0.99 settles too slowly here)",
    )
    p.add_argument(
        "--validate-every", type=int, default=1, help="validate every N epochs (and the last)"
    )
    p.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop cleanly (between epochs) after this long; run again to resume",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="only the first N records of each set (smoke)"
    )
    p.add_argument("--report", action="store_true", help="only write the report")
    add_prior_argument(p)


def write_json(path, obj):
    """Write ``obj`` as JSON atomically (a reader never sees half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(obj, handle, indent=1, default=float)
    os.replace(tmp, path)


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as handle:
        return json.load(handle)


def machine():
    """One line naming the machine (CPU model included) and the software, for the logs."""
    from timing import machine as describe

    return describe()


def mean_sd(values, digits=3):
    """``"m ± s"`` over seeds (sample s.d.), or the one value."""
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def model_builder(build_symmetric, build_plain, bn_momentum, output_bias=0.0):
    """``kind -> model`` for the kinds of :data:`keras_symconv.tasks.MODEL_KINDS`."""
    common = dict(batch_norm_momentum=bn_momentum, output_bias=output_bias)
    return lambda kind: build_model(kind, build_symmetric, build_plain, **common)


def add_prior_argument(parser):
    parser.add_argument(
        "--no-output-prior",
        dest="output_prior",
        action="store_false",
        help="start the output logits at 0 as the paper (default: at the log-odds of the "
        "constant that minimizes the weighted loss on the training crops, for every model)",
    )


def pin(runs, key, value, legacy, option):
    """Record ``value`` under ``key`` in each run's state; never resume under another.

    ``legacy`` is what runs made before the option existed used.
    """
    for run in runs:
        prior = run.state.setdefault(key, legacy if run.state["epochs_done"] else value)
        if prior != value:
            raise SystemExit(
                f"{run.folder}: trained with {option} {prior}, not {value}; resume it with "
                "that, or give another --work"
            )


def log(path, text):
    """Print ``text`` and append it to the log file ``path``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    line = f"[{stamp}] {text}"
    print(line, flush=True)
    with open(path, "a") as handle:
        handle.write(line + "\n")


def log_start(work, script, argv):
    """Log the command that starts training in ``work`` (read back by :func:`start_commands`)."""
    command = " ".join([f"benchmarks/{script}", *argv])
    log(os.path.join(work, "train.log"), f"start: {command}; {machine()}")


def collect_results(work, out):
    """Every finished run's ``result.json``, kept in the report folder across machines.

    The work folder (checkpoints, outside the repository) does not outlive
    the machine it was made on; the report folder is in the repository. So
    each ``result.json`` found under ``work`` is copied to the same relative
    place under ``out/runs``, and the lines of ``work/train.log`` are added
    to ``out/runs/train.log`` (each line once, in order); runs kept there
    earlier are read back from there. A run in ``work`` replaces its kept
    copy. Returns ``{relative folder: result}``, sorted by folder.
    """
    kept = os.path.join(out, "runs")
    found = {}
    for base in (kept, work):
        for root, _, names in os.walk(base):
            if "result.json" in names:
                found[os.path.relpath(root, base)] = (
                    base,
                    read_json(os.path.join(root, "result.json")),
                )
    for relative, (base, result) in found.items():
        if base == work:
            os.makedirs(os.path.join(kept, relative), exist_ok=True)
            write_json(os.path.join(kept, relative, "result.json"), result)
    source = os.path.join(work, "train.log")
    if os.path.exists(source):
        os.makedirs(kept, exist_ok=True)
        target = os.path.join(kept, "train.log")
        seen = set()
        if os.path.exists(target):
            with open(target) as handle:
                seen = set(handle.read().splitlines())
        with open(source) as handle:
            new = [line for line in handle.read().splitlines() if line not in seen]
        with open(target, "a") as handle:
            handle.writelines(line + "\n" for line in new)
    return {relative: found[relative][1] for relative in sorted(found)}


def start_commands(out):
    """The commands that started the runs kept in ``out/runs/train.log``.

    Each once, in the order first started, without the machine part of the
    ``start:`` line (see :func:`log`), for the report's header: the report
    itself may be written by a ``--report`` call that trained nothing.
    """
    path = os.path.join(out, "runs", "train.log")
    commands = []
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                _, marker, rest = line.partition("] start: ")
                command = rest.split("; ")[0].strip()
                if marker and command not in commands:
                    commands.append(command)
    return commands


def command_lines(script, argv, out):
    """Report header lines: this call's command and those that trained the kept runs."""
    started = start_commands(out)
    return [
        f"Report: `{' '.join(['python', f'benchmarks/{script}', *argv])}`",
        "Runs started with: "
        + ("; ".join(f"`python {c}`" for c in started) or "none kept yet")
        + " (see `runs/train.log`).",
    ]


def predict_maps(model, items, task, predict=None, warm_up=True):
    """Probability maps of whole items, one at a time, and seconds per item.

    ``predict``: :func:`keras_symconv.inference.make_predictor` of ``model``
    (one trace with the side left unknown serves every length; made here when
    ``None``, pass one to reuse its trace). ``warm_up`` runs the shortest item
    once first, so that the timings leave the tracing out. Maps are float64,
    0 on the diagonal, restricted as ``task`` scores them.
    """
    from keras_symconv.inference import make_predictor

    predict = predict or make_predictor(model, task)
    if warm_up:
        predict(min(items, key=len))
    maps, seconds = [], []
    for item in items:
        start = time.perf_counter()
        prob = predict(item).astype(np.float64)
        seconds.append(time.perf_counter() - start)
        maps.append(task.restrict(item, prob))
    return maps, seconds


#: What :func:`predict_maps` needs to know about RNA records (``inputs``, ``restrict``).
RnaItems = TASKS["rna"]


class Run:
    """One model and one seed: its checkpoint folder and its training state."""

    def __init__(self, folder, kind, seed, build, lr, positive_weight=None, loss=None):
        """``loss``: a function making the Keras loss (default: the pair-map loss)."""
        self.folder, self.kind, self.seed = folder, kind, seed
        self.build, self.lr, self.positive_weight = build, lr, positive_weight
        self.make_loss = loss
        os.makedirs(folder, exist_ok=True)
        self.state_path = os.path.join(folder, "state.json")
        self.state = read_json(
            self.state_path,
            {"kind": kind, "seed": seed, "epochs_done": 0, "history": [], "best": None},
        )
        self.model = self.forward = None

    @property
    def last_path(self):
        return os.path.join(self.folder, "last.keras")

    @property
    def best_path(self):
        return os.path.join(self.folder, "best.keras")

    @property
    def result_path(self):
        return os.path.join(self.folder, "result.json")

    def load(self):
        """The model: built fresh (epoch 0) or the last checkpoint with its optimizer."""
        if self.model is not None:
            return self.model
        import keras

        import keras_symconv  # noqa: F401  (registers the layers, loss and metric)
        from keras_symconv.losses import PairBinaryCrossentropy

        if self.state["epochs_done"] and os.path.exists(self.last_path):
            self.model = keras.saving.load_model(self.last_path)
        else:
            self.state.update(epochs_done=0, history=[], best=None)
            keras.utils.set_random_seed(self.seed)
            self.model = self.build(self.kind)
            if self.make_loss is not None:
                loss = self.make_loss()
            else:
                loss = PairBinaryCrossentropy(positive_weight=self.positive_weight)
            self.model.compile(optimizer=keras.optimizers.Adam(self.lr), loss=loss)
        return self.model

    def train_epoch(self, dataset, steps):
        model = self.load()
        start = time.perf_counter()
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        seconds = time.perf_counter() - start
        entry = {
            "epoch": self.state["epochs_done"] + 1,
            "seconds": seconds,
            "loss": float(history.history["loss"][-1]),
            "optimizer_iterations": int(model.optimizer.iterations.numpy()),
        }
        return entry

    def validate(self, entry, items, task, score):
        """Score every threshold on the validation items; keep the best model."""
        if self.forward is None:
            from keras_symconv.inference import make_predictor

            self.forward = make_predictor(self.model, task)
        maps, _ = predict_maps(self.model, items, task, self.forward, warm_up=False)
        at_half = score(items, maps, 0.5)
        # The threshold by "threshold_selection" where the score has one (a
        # threshold-free epoch criterion), else by the epoch criterion itself.
        key = "threshold_selection" if "threshold_selection" in at_half else "selection"
        threshold, by_threshold = choose_threshold(lambda t: score(items, maps, t), key=key)
        entry["valid_at_0.5"] = by_threshold[0.5]
        self.record_validation(entry, {"threshold": threshold, **by_threshold[threshold]})

    def record_validation(self, entry, figures):
        """Store the validation ``figures`` (with a ``"selection"`` key); keep the best model."""
        entry["valid"] = figures
        best = self.state["best"]
        if best is None or figures["selection"] > best["selection"]:
            self.model.save(self.best_path)
            self.state["best"] = {"epoch": entry["epoch"], **figures}
            entry["saved_best"] = True

    def commit(self, entry):
        """Checkpoint after an epoch: the model first, then the state naming it."""
        self.model.save(self.last_path)
        self.state["epochs_done"] = entry["epoch"]
        self.state["history"].append(entry)
        write_json(self.state_path, self.state)

    def release(self):
        self.model = self.forward = None

    def best_model(self):
        """The model chosen on validation, and the result fields every task shares."""
        import keras

        import keras_symconv  # noqa: F401  (registers the layers)

        model = keras.saving.load_model(self.best_path)
        best, history = self.state["best"], self.state["history"]
        return model, {
            "kind": self.kind,
            "seed": self.seed,
            "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
            "best_epoch": best["epoch"],
            "threshold": best.get("threshold"),
            "epochs": self.state["epochs_done"],
            "seconds_per_epoch": float(np.median([h["seconds"] for h in history])),
            "epoch_seconds": [h["seconds"] for h in history],
        }

    def needs_result(self):
        """True unless ``result.json`` exists for the epochs trained so far."""
        done = read_json(self.result_path)
        return done is None or done["epochs"] != self.state["epochs_done"]


def train_side_by_side(
    runs, epochs, batches, steps, validation, validate_every, deadline, logfile, label=None
):
    """Train ``runs`` one epoch each in turn, up to ``epochs``, from where they stopped.

    Args:
        runs: ``Run`` objects (one seed, several models).
        batches: ``epoch -> tf.data.Dataset`` of one pass over the training set.
        steps: batches in that pass.
        validation: ``(items, task, score)`` for :meth:`Run.validate`, or a
            function ``model -> figures`` (with a ``"selection"`` key) for
            :meth:`Run.record_validation`.
        validate_every: validate after every N-th epoch, and after the last.
        deadline: ``time.time()`` after which no epoch is started, or None.
        label: what the log's epoch lines start with (the experiment, where a
            script trains several into one log), or None.

    Returns:
        False when stopped by the deadline (run again to resume), else True.
    """
    for epoch in range(epochs):
        for run in runs:
            if run.state["epochs_done"] > epoch:
                continue
            if deadline is not None and time.time() > deadline:
                log(logfile, "stopping (--stop-after); run again to resume")
                return False
            entry = run.train_epoch(batches(epoch), steps)
            if epoch + 1 == epochs or (epoch + 1) % validate_every == 0:
                if callable(validation):
                    run.record_validation(entry, validation(run.model))
                else:
                    run.validate(entry, *validation)
            run.commit(entry)
            v = entry.get("valid")
            log(
                logfile,
                ("" if label is None else f"{label} ")
                + f"seed {run.seed} {run.kind:8s} epoch {entry['epoch']}: {entry['seconds']:.0f} s"
                f" loss {entry['loss']:.4f}"
                + (
                    f"  valid {v['selection']:.4f}"
                    + (f" (threshold {v['threshold']})" if "threshold" in v else "")
                    + (" best" if entry.get("saved_best") else "")
                    if v
                    else ""
                ),
            )
    for run in runs:
        run.release()
    return True
