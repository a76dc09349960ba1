"""Models trained side by side: checkpoints, resume, validation, prediction."""

from __future__ import annotations

import os
import time

import numpy as np

from _repro.records import log, read_json, write_json
from keras_symconv.tasks import TASKS, build_model
from keras_symconv.training import choose_threshold


def model_builder(build_symmetric, build_plain, bn_momentum, output_bias=0.0):
    """``kind -> model`` for the kinds of :data:`keras_symconv.tasks.MODEL_KINDS`."""
    common = dict(batch_norm_momentum=bn_momentum, output_bias=output_bias)
    return lambda kind: build_model(kind, build_symmetric, build_plain, **common)


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
