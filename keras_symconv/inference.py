"""Loading trained models, predicting pair maps and scoring them.

Library functions raise ``ValueError`` (``FileNotFoundError`` for missing
files) with messages that name the file; the ``symconv`` tool reports them.
"""

from __future__ import annotations

import os
import time

from keras_symconv.tasks import TASKS

__all__ = [
    "read_keras_file",
    "model_file",
    "load_model",
    "load_recommender",
    "make_predictor",
    "TILE_MODES",
    "predict_items",
    "score_items",
    "evaluate_structures",
    "validation_threshold",
    "resolve_threshold",
    "trainable_params",
]


def trainable_params(model):
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def read_keras_file(path):
    """Load a ``.keras`` file with the package's layers (safe mode), with clear errors."""
    import keras

    import keras_symconv  # noqa: F401  (registers the layers)

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: not a .keras model file")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not our model"
        raise ValueError(
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
        raise ValueError(
            f"{path}: not a keras-symconv {task.title} model (expects inputs "
            f"{list(task.input_shapes)} and output (None, None, 1); this one has "
            f"{[tuple(i.shape[1:]) for i in inputs]} -> {[tuple(o.shape) for o in outputs]})"
        )
    return model


def load_recommender(path):
    """Load a CosRec / SCosRec ``.keras`` file, with clear errors."""
    model = read_keras_file(path)
    names = {layer.name for layer in model.layers}
    if not {"user", "sequence", "items", "item_scorer", "features"} <= names:
        raise ValueError(f"{path}: not a keras-symconv recommender (CosRec / SCosRec) model")
    return model


#: ``make_predictor``'s tiling modes.
TILE_MODES = ("auto", "always", "never")


def make_predictor(model, task=None, tile="auto", tile_size=1024, log=None):
    """A compiled ``item -> (L, L)`` probability function (no retracing).

    The diagonal is set to 0: a residue never pairs with itself, and the
    loss never constrains the model there.

    Args:
        model: a pair-map model of ``task``.
        task: the task (default RNA), which gives the model's inputs.
        tile: ``"auto"`` (default) predicts in tiles
            (:class:`keras_symconv.tiling.TiledPredictor`) when the whole
            map's activations would take more than 40 % of the memory
            available (:meth:`~keras_symconv.tiling.TiledPredictor.should_tile`),
            ``"always"`` or ``"never"``.
        tile_size: side of the tiles.
        log: called with a line of text when an item is predicted in tiles.
    """
    import numpy as np
    import tensorflow as tf

    if tile not in TILE_MODES:
        raise ValueError(f"Argument `tile` must be one of {TILE_MODES}. Received: tile={tile!r}")
    task = task or TASKS["rna"]
    signature = [tf.TensorSpec((1,) + shape, tf.float32) for shape in task.input_shapes]

    @tf.function(input_signature=signature, autograph=False)
    def predict(*x):
        prob = model(x[0] if len(x) == 1 else list(x), training=False)[0, :, :, 0]
        return tf.linalg.set_diag(prob, tf.zeros_like(tf.linalg.diag_part(prob)))

    tiler = []

    def run(item):
        inputs = [np.asarray(a, np.float32)[None] for a in task.inputs(item)]
        length = inputs[0].shape[1]
        if tile != "never":
            if not tiler:
                from keras_symconv.tiling import TiledPredictor

                try:
                    tiler.append(TiledPredictor(model, tile_size))
                except ValueError:
                    if tile == "always":
                        raise
                    tiler.append(None)  # a model tiling cannot walk: whole maps
            tiled = tiler[0]
            if tiled is not None and (tile == "always" or tiled.should_tile(length)):
                if log is not None:
                    need = tiled.untiled_bytes(length)
                    size = f"{need / 2**30:.1f} GiB" if need >= 2**30 else f"{need / 2**20:.0f} MiB"
                    log(
                        f"{getattr(item, 'name', 'input')}: {length} long, predicted in tiles "
                        f"of {tile_size} (the whole map would take about {size})"
                    )
                prob = tiled(inputs)[:, :, 0]
                np.fill_diagonal(prob, 0.0)
                return prob
        return predict(*[tf.constant(a) for a in inputs]).numpy()

    return run


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
