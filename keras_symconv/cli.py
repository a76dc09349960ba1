"""The ``symconv`` command-line tool (also ``python -m keras_symconv``).

    symconv rna train    (--data PATH... | --synthetic N) --model scnn|cnn|cnn-sym --out DIR
    symconv rna compare  (--data PATH... | --synthetic N) --out DIR
    symconv rna predict  [MODEL] INPUT... --out DIR   (MODEL: a .keras file or a preset)
    symconv rna evaluate MODEL DATA...
    symconv rna models                                (the shipped presets)
    symconv contact train|compare|predict|evaluate ... (the same, for proteins)
    symconv rec train    (--data FILE... | --train F --test F) --model scosrec|cosrec --out DIR
    symconv rec evaluate MODEL [data options]    (sequential recommendation)

``symconv <rna|contact|rec> <command> --help`` lists every option.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from keras_symconv.training import write_decoding

__all__ = ["main", "build_parser"]

MODEL_KINDS = ("scnn", "cnn", "cnn-sym")
SEQUENCE_SUFFIXES = (".fa", ".fasta", ".fna")


class UsageError(ValueError):
    """A user error reported as ``symconv: error: ...`` with exit status 2."""


# --------------------------------------------------------------------------- helpers


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _make_strategy(name):
    tf = _tf()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multiworker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _task():
    """``(is_chief, worker index)`` from TF_CONFIG (chief when there is none)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in config.get("cluster", {})
    return (kind == "chief" or (kind == "worker" and index == 0 and not has_chief)), index


class RnaTask:
    """RNA secondary structure: items are RNAStructure records."""

    name = "rna"
    title = "RNA"
    input_shapes = ((None, 5),)
    default_crop = 500

    def build(self, kind, **kwargs):
        from keras_symconv.models import build_rna_cnn, build_rna_scnn

        return _build(kind, build_rna_scnn, build_rna_cnn, **kwargs)

    def read(self, paths, args):
        from keras_symconv.data import read_structures

        return read_structures(paths)

    def synthetic(self, args):
        from keras_symconv.data import synthetic_rna_dataset

        lo, hi = args.synthetic_length
        return synthetic_rna_dataset(args.synthetic, lo, hi, seed=args.seed)

    def dataset(self, items, batch_size, crop, seed, drop_remainder):
        from keras_symconv.data.pipeline import rna_training_dataset

        return rna_training_dataset(
            items, batch_size, crop, seed=seed, drop_remainder=drop_remainder
        )

    def inputs(self, item):
        return [item.one_hot()]

    def native(self, item):
        return item.contact_map()

    def restrict(self, item, prob):
        return prob

    def family(self, item):
        return item.family

    def extra_metrics(self, items, probs):
        return {}


class ContactTask:
    """Protein contact maps: items are ContactExample records."""

    name = "contact"
    title = "contact-map"
    input_shapes = ((None, 25), (None, None, 3))
    default_crop = 100

    def build(self, kind, **kwargs):
        from keras_symconv.models import build_contact_cnn, build_contact_scnn

        return _build(kind, build_contact_scnn, build_contact_cnn, **kwargs)

    def read(self, paths, args):
        from keras_symconv.data.contact import contact_example
        from keras_symconv.data.protein import read_pdb, read_protein_json

        files = []
        for path in paths:
            if os.path.isdir(path):
                for root, dirs, names in os.walk(path):
                    dirs.sort()
                    files += [
                        os.path.join(root, n)
                        for n in sorted(names)
                        if n.endswith((".json", ".pdb"))
                    ]
            elif os.path.isfile(path):
                files.append(path)
            else:
                raise FileNotFoundError(f"{path}: no such file or folder")
        chains = []
        for f in files:
            if f.endswith(".json"):
                chains += read_protein_json(f)
            elif f.endswith(".pdb"):
                chains.append(read_pdb(f))
            else:
                raise UsageError(f"{f}: unknown protein format; expected .json or .pdb")
        lo, hi = args.length
        chains = [c for c in chains if lo <= len(c) <= hi]
        alignments = self._alignments(getattr(args, "alignments", None))
        examples = []
        for chain in chains:
            codes = None
            if alignments:
                from keras_symconv.data.alignment import find_alignment

                try:
                    _, codes, info = find_alignment(alignments, chain.sequence)
                except ValueError:
                    print(
                        f"symconv: {chain.name}: no alignment matches; its alignment "
                        "features are zero",
                        file=sys.stderr,
                    )
            examples.append(contact_example(chain, codes))
        return examples

    @staticmethod
    def _alignments(folder):
        if not folder:
            return []
        from keras_symconv.data.alignment import read_alignment

        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: no such folder")
        paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
        alignments = [read_alignment(p) for p in paths if os.path.isfile(p)]
        if not alignments:
            raise UsageError(f"{folder}: no alignment files")
        return alignments

    def synthetic(self, args):
        raise UsageError("symconv contact has no synthetic data: give --data")

    def dataset(self, items, batch_size, crop, seed, drop_remainder):
        from keras_symconv.data.contact import contact_training_dataset

        return contact_training_dataset(
            items, batch_size, crop, seed=seed, drop_remainder=drop_remainder
        )

    def inputs(self, item):
        return [item.sequence_features, item.pair_features]

    def native(self, item):
        return item.contacts * (item.mask[:, None] * item.mask[None])

    def restrict(self, item, prob):
        """Residues without coordinates are left out of the metrics."""
        return prob * (item.mask[:, None] * item.mask[None])

    def family(self, item):
        return None

    def extra_metrics(self, items, probs):
        import numpy as np

        from keras_symconv.metrics import contact_precision

        scores = [
            contact_precision(e.contacts, p, e.mask) for e, p in zip(items, probs, strict=True)
        ]
        return {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}


TASKS = {"rna": RnaTask(), "contact": ContactTask()}


def _build(kind, build_symmetric, build_plain, **kwargs):
    if kind == "scnn":
        return build_symmetric(**kwargs)
    if kind == "cnn":
        return build_plain(**kwargs)
    if kind == "cnn-sym":
        return build_plain(symmetrize_output=True, **kwargs)
    raise UsageError(f"unknown model {kind!r}; expected one of {', '.join(MODEL_KINDS)}")


def trainable_params(model):
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def read_keras_file(path):
    """Load a ``.keras`` file with the package's layers (safe mode), with clear errors."""
    import keras

    import keras_symconv  # noqa: F401  (registers the layers)

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if not path.endswith(".keras"):
        raise UsageError(f"{path}: not a .keras model file")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not our model"
        raise UsageError(
            f"{path}: not a keras-symconv model ({type(exc).__name__}: {exc})"
        ) from exc
    return model


def model_file(name):
    """The ``.keras`` file of a model argument: a shipped preset's name, or a path."""
    from keras_symconv.pretrained import list_presets, preset_path

    if not name.endswith(".keras") and name in list_presets():
        return preset_path(name)
    return name


def load_model(path, task=None):
    """Load a ``.keras`` model (or preset) made by this package for ``task``, with clear errors."""
    task = task or TASKS["rna"]
    path = model_file(path)
    model = read_keras_file(path)
    inputs, outputs = model.inputs, model.outputs
    if (
        tuple(tuple(i.shape[1:]) for i in inputs) != task.input_shapes
        or len(outputs) != 1
        or len(outputs[0].shape) != 4
        or outputs[0].shape[-1] != 1
    ):
        raise UsageError(
            f"{path}: not a keras-symconv {task.title} model (expects inputs "
            f"{list(task.input_shapes)} and output (None, None, 1); this one has "
            f"{[tuple(i.shape[1:]) for i in inputs]} -> {[tuple(o.shape) for o in outputs]})"
        )
    return model


def make_predictor(model, task=None):
    """A compiled ``item -> (L, L)`` probability function (no retracing).

    The diagonal is set to 0: a residue never pairs with itself, and the
    loss never constrains the model there.
    """
    tf = _tf()
    task = task or TASKS["rna"]
    signature = [tf.TensorSpec((1,) + shape, tf.float32) for shape in task.input_shapes]

    @tf.function(input_signature=signature, autograph=False)
    def predict(*x):
        prob = model(x[0] if len(x) == 1 else list(x), training=False)[0, :, :, 0]
        return tf.linalg.set_diag(prob, tf.zeros_like(tf.linalg.diag_part(prob)))

    return lambda item: predict(
        *[tf.constant(a[None], tf.float32) for a in task.inputs(item)]
    ).numpy()


def predict_items(predict, items, task=None):
    """Probability maps of ``items`` (restricted as the task scores them) and seconds per item."""
    task = task or TASKS["rna"]
    start = time.perf_counter()
    probs = [predict(item) for item in items]
    seconds = (time.perf_counter() - start) / len(items)
    return [task.restrict(item, p) for item, p in zip(items, probs, strict=True)], seconds


def score_items(items, probs, threshold=0.5, strict=False, task=None):
    """Decoded metrics (see :func:`keras_symconv.metrics.pair_metrics`) of predicted maps."""
    from keras_symconv.metrics import pair_metrics

    task = task or TASKS["rna"]
    natives = [task.native(item) for item in items]
    result = pair_metrics(natives, probs, threshold, strict)
    result.update(task.extra_metrics(items, probs))
    result["names"] = [item.name for item in items]
    result["families"] = [task.family(item) for item in items]
    result["threshold"] = float(threshold)
    return result


def evaluate_structures(predict, items, threshold=0.5, strict=False, task=None):
    """Decoded metrics (see :func:`keras_symconv.metrics.pair_metrics`) and timing."""
    probs, seconds = predict_items(predict, items, task)
    result = score_items(items, probs, threshold, strict, task)
    result["seconds_per_sequence"] = seconds
    return result


def validation_threshold(items, probs, threshold=None, task=None):
    """Score validation maps at ``threshold``, or at the best of the grid when it is None.

    Returns the :func:`score_items` result at the threshold used (its
    ``"threshold"`` key), chosen by accuracy on these maps over
    :data:`keras_symconv.training.THRESHOLDS`.
    """
    from keras_symconv.training import choose_threshold

    if threshold is not None:
        return score_items(items, probs, threshold, task=task)
    best, figures = choose_threshold(lambda t: score_items(items, probs, t, task=task))
    return figures[best]


def resolve_threshold(given, model_path):
    """``(threshold, how)``: the given one, else the one stored in the model, else 0.5."""
    from keras_symconv.training import read_decoding

    if given is not None:
        return float(given), "given with --threshold"
    model_path = model_file(model_path)
    stored = read_decoding(model_path) if model_path.endswith(".keras") else None
    if stored is not None:
        how = stored.get("chosen_on", "stored")
        return float(stored["threshold"]), f"stored in the model ({how})"
    return 0.5, "default; the model stores none"


def _read_data(args, task):
    if bool(args.data) == bool(args.synthetic):
        raise UsageError("give exactly one of --data and --synthetic")
    structures = task.synthetic(args) if args.synthetic else task.read(args.data, args)
    if args.valid:
        return structures, task.read(args.valid, args)
    if len(structures) < 2:
        raise UsageError("need at least 2 structures to split off a validation part")
    import numpy as np

    order = np.random.default_rng(args.seed).permutation(len(structures))
    n_valid = max(1, int(round(args.valid_fraction * len(structures))))
    valid = [structures[k] for k in sorted(order[:n_valid])]
    train = [structures[k] for k in sorted(order[n_valid:])]
    return train, valid


def _safe_name(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name)).strip("._") or "sequence"


def heatmap(path, maps, titles, suptitle=None):
    """Save side-by-side heatmaps of (L, L) maps as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4 * len(maps), 4), squeeze=False)
    for ax, m, title in zip(axes[0], maps, titles, strict=True):
        image = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("j")
        ax.set_ylabel("i")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="pair probability")
    if suptitle:
        fig.suptitle(suptitle)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- training


def output_prior(task, train, args):
    """The models' initial output logit: the prior log-odds of the training crops, or 0.

    One pass of the training pipeline (the run's seed and crop) is counted by
    :func:`keras_symconv.training.prior_logit`; ``--no-output-prior`` starts
    at 0 as the paper did.
    """
    if not getattr(args, "output_prior", True):
        return 0.0
    from keras_symconv.training import prior_logit

    dataset = task.dataset(train, args.batch_size, args.crop, args.seed, drop_remainder=False)
    try:
        return prior_logit(dataset, args.positive_weight)
    except ValueError as exc:
        raise UsageError(f"--data: {exc} Give --no-output-prior to start at 0.") from exc


def train_model(task, kind, train, valid, args, out_dir, strategy=None, verbose=1):
    """Train one model; write model.keras (best), savedmodel/, run.json. Returns a summary."""
    tf = _tf()
    import keras
    import numpy as np

    from keras_symconv.losses import PairBinaryCrossentropy
    from keras_symconv.metrics import PairMetric

    strategy = strategy or tf.distribute.get_strategy()
    is_chief, index = _task()
    if args.strategy == "multiworker" and not is_chief:
        out_dir = os.path.join(out_dir, f"worker_{index}")
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    output_bias = output_prior(task, train, args)

    with strategy.scope():
        # Global batch statistics under a strategy, so that every replica
        # also ends with the same batch-norm moving statistics.
        model = task.build(
            kind,
            synchronized_batch_norm=args.strategy != "default",
            batch_norm_momentum=args.bn_momentum,
            output_bias=output_bias,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(args.lr),
            loss=PairBinaryCrossentropy(positive_weight=args.positive_weight),
            metrics=[PairMetric("accuracy", name="pair_acc")],
            jit_compile=args.jit,
        )

    replicas = strategy.num_replicas_in_sync
    steps = max(1, len(train) // args.batch_size)
    # One global-batch pipeline, the same (seeded) on every worker; under a
    # distribution strategy Keras splits each global batch across the
    # replicas. Full batches only then, so that every replica gets data.
    dataset = task.dataset(
        train, args.batch_size, args.crop, args.seed, drop_remainder=replicas > 1
    ).repeat()

    predict = make_predictor(model, task)
    history: list[dict] = []
    model_path = os.path.join(out_dir, "model.keras")
    best_so_far = [-1.0]

    def end_of_epoch(epoch, seconds, logs):
        """Decoded validation metrics; keeps the best model. Updates `logs`."""
        probs, _ = predict_items(predict, valid, task)
        result = validation_threshold(valid, probs, args.threshold, task)
        logs.update(
            val_ppv=result["ppv"], val_sen=result["sensitivity"], val_acc=result["accuracy"]
        )
        history.append(
            {
                "epoch": epoch + 1,
                "seconds": seconds,
                "threshold": result["threshold"],
                **{k: float(v) for k, v in logs.items()},
            }
        )
        improved = result["accuracy"] > best_so_far[0]
        if improved:
            best_so_far[0] = result["accuracy"]
            model.save(model_path)
            write_decoding(
                model_path,
                result["threshold"],
                chosen_on="validation" if args.threshold is None else "given",
                epoch=epoch + 1,
                valid_sequences=len(valid),
                valid_ppv=result["ppv"],
                valid_sensitivity=result["sensitivity"],
                valid_accuracy=result["accuracy"],
            )
        if verbose != 1:  # the progress bar already shows val_ppv/val_sen/val_acc
            print(
                f"epoch {epoch + 1}: {seconds:.1f}s  loss {logs.get('loss', float('nan')):.4f}"
                f"  val PPV {result['ppv']:.3f}  Sen {result['sensitivity']:.3f}  "
                f"Acc {result['accuracy']:.3f} (threshold {result['threshold']:g})"
                + ("  (best, saved)" if improved else ""),
                flush=True,
            )

    if args.strategy == "multiworker":
        _fit_multiworker(model, strategy, dataset, steps, args, end_of_epoch)
    else:

        class Validate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                end_of_epoch(
                    epoch, time.perf_counter() - self.start, logs if logs is not None else {}
                )

        model.fit(
            dataset,
            epochs=args.epochs,
            steps_per_epoch=steps,
            callbacks=[Validate()],
            shuffle=False,  # the pipeline shuffles, seeded
            verbose=verbose,
        )
    best = load_model(model_path, task)
    best.export(os.path.join(out_dir, "savedmodel"), verbose=False)
    best_predict = make_predictor(best, task)
    threshold, _ = resolve_threshold(None, model_path)
    final = evaluate_structures(best_predict, valid, threshold, task=task)
    summary = {
        "model": kind,
        "trainable_params": trainable_params(model),
        "train_sequences": len(train),
        "valid_sequences": len(valid),
        "seconds_per_epoch": float(np.median([h["seconds"] for h in history])),
        "best_valid": {
            k: v for k, v in final.items() if k not in ("per_sequence", "names", "families")
        },
        "inference_seconds_per_sequence": final["seconds_per_sequence"],
        "threshold": threshold,
        "output_bias": output_bias,
        "history": history,
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "replicas": replicas,
        "model_path": model_path,
        "savedmodel_path": os.path.join(out_dir, "savedmodel"),
    }
    with open(os.path.join(out_dir, "run.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return summary, best_predict


def _fit_multiworker(model, strategy, dataset, steps, args, end_of_epoch):
    """A custom loop for MultiWorkerMirroredStrategy.

    Keras 3's ``fit`` fails under this strategy (keras-team/keras#20585: the
    symbolic build reduces a PerReplica batch), so the train step is written
    out: per-replica loss scaled to the global batch, plus the layers'
    regularization losses, gradients all-reduced by the strategy.
    """
    tf = _tf()

    loss_fn = model.loss
    optimizer = model.optimizer
    distributed = strategy.experimental_distribute_dataset(dataset)
    iterator = iter(distributed)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            per_sample = loss_fn.call(y, y_pred)
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=args.batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(jit_compile=args.jit)
    def train_step():
        x, y = next(iterator)
        return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y)), axis=None)

    for epoch in range(args.epochs):
        start = time.perf_counter()
        losses = [float(train_step()) for _ in range(steps)]
        logs = {"loss": sum(losses) / len(losses)}
        end_of_epoch(epoch, time.perf_counter() - start, logs)


def cmd_train(args):
    task = TASKS[args.domain]
    strategy = _make_strategy(args.strategy)
    train, valid = _read_data(args, task)
    summary, _ = train_model(task, args.model, train, valid, args, args.out, strategy, args.verbose)
    print(json.dumps({k: summary[k] for k in ("model", "trainable_params", "best_valid")}))
    return 0


def cmd_compare(args):
    task = TASKS[args.domain]
    strategy = _make_strategy(args.strategy)
    train, valid = _read_data(args, task)
    rows, predictors = [], {}
    for kind in args.models:
        print(f"== training {kind} ==", flush=True)
        summary, predictors[kind] = train_model(
            task, kind, train, valid, args, os.path.join(args.out, kind), strategy, args.verbose
        )
        rows.append(summary)
    table = [
        "| model | trainable params | train s/epoch | threshold | valid PPV | valid Sen "
        "| valid Acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["best_valid"]
        table.append(
            f"| {r['model']} | {r['trainable_params']:,} | {r['seconds_per_epoch']:.1f} "
            f"| {r['threshold']:g} | {b['ppv']:.3f} | {b['sensitivity']:.3f} "
            f"| {b['accuracy']:.3f} |"
        )
    text = "\n".join(table)
    print(text)
    example = max(valid, key=len) if args.heatmap_longest else valid[0]
    maps = [task.native(example)] + [predictors[k](example) for k in args.models]
    png = os.path.join(args.out, "heatmaps.png")
    heatmap(png, maps, ["native"] + list(args.models), f"{example.name} (L = {len(example)})")
    with open(os.path.join(args.out, "compare.md"), "w") as handle:
        handle.write(text + "\n")
    with open(os.path.join(args.out, "compare.json"), "w") as handle:
        json.dump(rows, handle, indent=2, default=str)
    print(f"heatmaps: {png}")
    return 0


# --------------------------------------------------------------------------- predict / evaluate


def _read_inputs(paths):
    from keras_symconv.data import read_fasta_sequences, read_structures

    items = []
    for path in paths:
        if os.path.isfile(path) and os.path.splitext(path)[1].lower() in SEQUENCE_SUFFIXES:
            items.extend(read_fasta_sequences(path))
        else:
            items.extend((r.name, r.sequence) for r in read_structures(path))
    return items


def _stems():
    """Unique, file-system-safe file stems for possibly repeated names."""
    seen: dict[str, int] = {}

    def stem(name):
        base = _safe_name(name)
        seen[base] = seen.get(base, 0) + 1
        return base if seen[base] == 1 else f"{base}_{seen[base]}"

    return stem


def _model_and_inputs(arguments):
    """``(model, inputs)``: the first argument is the model when it is a ``.keras``
    file or a preset's name; otherwise the default preset predicts them all."""
    from keras_symconv.pretrained import DEFAULT_RNA_PRESET, list_presets

    first = arguments[0]
    if first.endswith(".keras") or first in list_presets():
        if len(arguments) == 1:
            raise UsageError(f"{first}: a model, but no input files follow it")
        return first, arguments[1:]
    if DEFAULT_RNA_PRESET not in list_presets():
        raise UsageError(
            f"no model named and no {DEFAULT_RNA_PRESET} preset installed: give a .keras file"
        )
    return DEFAULT_RNA_PRESET, arguments


def cmd_models(args):
    """List the shipped presets with how they were trained and what they score."""
    from keras_symconv.pretrained import list_presets, preset_metadata, preset_path

    names = list_presets()
    if not names:
        print("no presets installed")
        return 0
    print("| preset | model | params | trained | threshold | valid Acc | test PPV / Sen / Acc "
          "| date |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        m = preset_metadata(name)
        t, v, tr = m["test"], m["valid"], m["training"]
        print(
            f"| {name} | {m['model']} | {m['trainable_params']:,} | {tr['steps']} steps "
            f"({tr['epochs']} epochs), crops {'/'.join(map(str, tr['crops']))} | "
            f"{m['threshold']:g} | {v['accuracy']:.3f} | {t['ppv']:.3f} / {t['sensitivity']:.3f}"
            f" / {t['accuracy']:.3f} | {m['date']} |"
        )
    print(f"data: {preset_metadata(names[0])['data']}")
    if args.verbose:
        for name in names:
            print(f"\n{name} ({preset_path(name)}):")
            print(json.dumps(preset_metadata(name), indent=1))
    return 0


def cmd_predict(args):
    if args.domain == "contact":
        return _predict_contacts(args)
    from keras_symconv.data import RNAStructure, dot_bracket_levels, write_bpseq, write_ct
    from keras_symconv.metrics import decode_pairs

    model_name, inputs = _model_and_inputs(args.inputs)
    model = load_model(model_name)
    threshold, how = resolve_threshold(args.threshold, model_name)
    print(f"model {model_name}; decoding threshold {threshold:g} ({how})", flush=True)
    predict = make_predictor(model)
    os.makedirs(args.out, exist_ok=True)
    stem = _stems()
    for name, sequence in _read_inputs(inputs):
        structure = RNAStructure.from_pairs(name, sequence, [])
        prob = predict(structure)
        pairs = decode_pairs(prob, threshold, strict=True)
        structure = RNAStructure.from_pairs(name, sequence, pairs)
        base = os.path.join(args.out, stem(name))
        # The formats that hold any pairing first: a structure that
        # dot-bracket cannot write in full must not cost them.
        write_ct(base + ".ct", [structure])
        write_bpseq(base + ".bpseq", structure)
        if not args.no_png:
            heatmap(base + ".png", [prob], [f"{name} ({len(sequence)} nt)"])
        text, omitted = dot_bracket_levels(structure)
        with open(base + ".dbn", "w") as handle:
            handle.write(f">{name}\n{sequence}\n{text}\n")
        if omitted:
            shown = ", ".join(f"{i + 1}-{j + 1}" for i, j in omitted[:10])
            more = f" and {len(omitted) - 10} more" if len(omitted) > 10 else ""
            print(
                f"symconv: warning: {name}: {len(omitted)} of {len(pairs)} pairs need more "
                f"crossing levels than dot-bracket has; {base}.dbn leaves them out "
                f"({shown}{more}); {base}.ct and .bpseq hold every pair",
                file=sys.stderr,
                flush=True,
            )
        suffixes = ".ct, .bpseq, .dbn" + ("" if args.no_png else ", .png")
        print(f"{name}: {len(pairs)} pairs -> {base} ({suffixes})", flush=True)
    return 0


def _predict_contacts(args):
    from keras_symconv.data.protein import write_casp_rr

    task = TASKS["contact"]
    model = load_model(args.model, task)
    predict = make_predictor(model, task)
    os.makedirs(args.out, exist_ok=True)
    stem = _stems()
    for example in task.read(args.inputs, args):
        prob = predict(example)
        sequence = _sequence_from_features(example.sequence_features)
        base = os.path.join(args.out, stem(example.name))
        write_casp_rr(base + ".rr", example.name, sequence, prob, top=args.top)
        if not args.no_png:
            heatmap(
                base + ".png",
                [task.native(example), prob],
                ["native", f"predicted ({len(example)} residues)"],
                example.name,
            )
        print(f"{example.name}: {len(example)} residues -> {base}.rr", flush=True)
    return 0


def _sequence_from_features(features_1d):
    from keras_symconv.data.protein import AMINO_ACIDS

    letters = AMINO_ACIDS + "X"
    return "".join(letters[k] for k in features_1d[:, :21].argmax(1))


def cmd_evaluate(args):
    task = TASKS[args.domain]
    model = load_model(args.model, task)
    structures = task.read(args.data, args)
    if not structures:
        raise UsageError("no structures to evaluate")
    threshold, how = resolve_threshold(args.threshold, args.model)
    result = evaluate_structures(
        make_predictor(model, task), structures, threshold, args.strict, task=task
    )
    rows = [("all", list(range(len(structures))))]
    families = sorted({f for f in result["families"] if f})
    for fam in families:
        rows.append((fam, [k for k, f in enumerate(result["families"]) if f == fam]))
    lines = ["| set | n | PPV | Sen | Acc |", "|---|---|---|---|---|"]
    summary = {}
    for label, idx in rows:
        scores = [result["per_sequence"][k] for k in idx]
        ppv, sen, acc = (sum(s[c] for s in scores) / len(scores) for c in range(3))
        summary[label] = {"n": len(idx), "ppv": ppv, "sensitivity": sen, "accuracy": acc}
        lines.append(f"| {label} | {len(idx)} | {ppv:.3f} | {sen:.3f} | {acc:.3f} |")
    decoding = "strict one pair per base" if args.strict else "the paper's (authors') rule"
    print(f"decoding: {decoding}, threshold {threshold:g} ({how})")
    print("\n".join(lines))
    extra = {}
    for key in ("long_L", "long_L/2", "long_L/5", "medium_L", "medium_L/2", "medium_L/5"):
        if key in result:
            extra[key] = result[key]
    if extra:
        print("top-L precision: " + ", ".join(f"{k} {v:.3f}" for k, v in extra.items()))
        summary["all"].update(extra)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "summary": summary,
                    "per_sequence": result["per_sequence"],
                    "names": result["names"],
                },
                handle,
                indent=2,
            )
    return 0


# --------------------------------------------------------------------------- parser


def _add_training_args(p, domain):
    rna = domain == "rna"
    src = p.add_argument_group("data")
    src.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="structure files or folders" if rna else ".json / .pdb files or folders",
    )
    if rna:
        src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic RNAs instead")
        src.add_argument(
            "--synthetic-length",
            type=int,
            nargs=2,
            default=(60, 160),
            metavar=("MIN", "MAX"),
            help="length range of synthetic RNAs",
        )
    else:
        p.set_defaults(synthetic=None)
        _add_length(src)
    src.add_argument(
        "--valid",
        nargs="+",
        metavar="PATH",
        help="validation files (default: split off --valid-fraction)",
    )
    src.add_argument("--valid-fraction", type=float, default=0.1)
    crop = TASKS[domain].default_crop
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=10, help="global batch (paper: 10)")
    p.add_argument(
        "--crop", type=int, default=crop, help=f"longest training window (paper: {crop})"
    )
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--positive-weight", type=float, default=5.0)
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=0.9,
        help="batch-norm momentum (Keras' default 0.99 needs thousands of steps "
        "before the moving statistics used at inference settle; the "
        "default 0.9 suits short runs)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decoding threshold (default: chosen each epoch on the validation set from "
        "0.10, 0.15, ..., 0.90 and stored in model.keras with the best epoch)",
    )
    p.add_argument(
        "--no-output-prior",
        dest="output_prior",
        action="store_false",
        help="start the output logits at 0, as the paper (default: at the prior log-odds "
        "of a pair in the training crops, for every model)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jit",
        action="store_true",
        help="compile train steps with XLA (works with the BiLSTM models; off by "
        "default because every new crop length compiles anew: a first step "
        "took 16 s with XLA against 7 s without on 2 CPU cores)",
    )
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker"),
        default="default",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker = "
        "several machines described by TF_CONFIG",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))


def _add_length(group):
    group.add_argument(
        "--alignments",
        metavar="DIR",
        help="folder of aligned FASTA files; each chain takes the one it maps onto "
        "(keras_symconv.data.alignment.find_alignment) for its co-evolution features",
    )
    group.add_argument(
        "--length",
        type=int,
        nargs=2,
        default=(1, 10**9),
        metavar=("MIN", "MAX"),
        help="keep chains of this length range (the paper: 25 100)",
    )


THRESHOLD_HELP = (
    "decoding threshold (default: the one stored in the model, chosen on the validation "
    "set when it was trained; 0.5 for a model that stores none)"
)


def build_parser():
    parser = argparse.ArgumentParser(prog="symconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="domain", required=True)
    helps = {"rna": "RNA secondary structure", "contact": "protein contact maps"}
    for domain, text in helps.items():
        cmds = sub.add_parser(domain, help=text).add_subparsers(dest="command", required=True)

        p = cmds.add_parser("train", help="train one model")
        _add_training_args(p, domain)
        p.add_argument("--model", choices=MODEL_KINDS, default="scnn")
        p.set_defaults(func=cmd_train)

        p = cmds.add_parser("compare", help="train several models on the same data, side by side")
        _add_training_args(p, domain)
        p.add_argument("--models", nargs="+", choices=MODEL_KINDS, default=["cnn", "scnn"])
        p.add_argument(
            "--heatmap-longest",
            action="store_true",
            help="plot the longest validation item (default: the first)",
        )
        p.set_defaults(func=cmd_compare)

        p = cmds.add_parser("predict", help="predict pair maps")
        if domain == "rna":
            p.add_argument(
                "inputs",
                nargs="+",
                metavar="[MODEL] INPUT",
                help="the model (a .keras file written by 'symconv rna train', or a preset "
                "name: see 'symconv rna models'; default: the strand16s-scnn preset), then "
                ".fa/.fasta files, or structure files/folders",
            )
        else:
            p.add_argument("model", help=f"a .keras file written by 'symconv {domain} train'")
            p.add_argument("inputs", nargs="+", help=".json / .pdb files or folders")
            p.add_argument("--top", type=int, default=None, help="at most this many RR lines")
            _add_length(p)
        p.add_argument("--out", required=True, metavar="DIR")
        p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
        p.add_argument("--no-png", action="store_true", help="skip the heatmaps")
        p.set_defaults(func=cmd_predict)

        p = cmds.add_parser("evaluate", help="the paper's metrics on structure files")
        p.add_argument("model", help="a .keras file" + (" or a preset name" if domain == "rna"
                                                        else ""))  # fmt: skip
        p.add_argument("data", nargs="+", help="structure files or folders")
        p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
        p.add_argument("--strict", action="store_true", help="strict one-pair-per-base decoding")
        p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        if domain == "contact":
            _add_length(p)
        p.set_defaults(func=cmd_evaluate)
        if domain == "rna":
            p = cmds.add_parser("models", help="list the shipped trained models (presets)")
            p.add_argument("--verbose", action="store_true", help="also print each description")
            p.set_defaults(func=cmd_models)
    from keras_symconv import cli_rec

    cli_rec.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"symconv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
