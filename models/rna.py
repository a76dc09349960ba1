"""The paper's RNA secondary-structure networks (section IV-B, Table II).

Input ``(L, 5)`` one-hot bases (A, C, G, U, other), output ``(L, L, 1)`` pair
probabilities. With the defaults:

1. BiLSTM(75, sequences) -> Dense(15) per position (a plain ``Dense`` on
   ``(batch, L, 150)``; the authors' ``TimeDistributed`` gives wrong shapes in
   Keras 3 when ``predict`` sees a second length), concat the input ->
   ``(L, 20)``, self-Cartesian product -> ``(L, L, 40)``.
2. conv k=1 x40 -> BN -> ReLU (SCNN: symmetry generating).
3. parallel convs k=13 x20, k=9 x20, k=5 x10 -> concat 50 -> BN -> ReLU.
4. parallel convs k=9 x20, k=5 x20 -> concat 40 -> BN -> ReLU.
5. conv k=5 x20 -> BN -> ReLU.
6. side branch: self-Cartesian product of the raw input -> conv k=1 x20 (SCNN:
   generating) -> BN -> ReLU; concat with step 5 -> 40 channels.
7. conv k=3 x1 -> BN -> sigmoid.

All convs 'same' with bias and L2 1e-5 on the kernel; in the SCNN every conv
after step 1 is symmetry preserving. Trainable parameters: SCNN 239,318 and
CNN 389,538 (paper, Table II: 239,198 and 387,798).
"""

from __future__ import annotations

import keras
from keras_symconv.models._blocks import (
    COMMON_DEFAULTS,
    SYMMETRIC_DEFAULTS,
    Blocks,
)

from keras_symconv import _validation as check
from keras_symconv.layers import Symmetrize

__all__ = ["build_rna_scnn", "build_rna_cnn", "PAPER_TRAINABLE_PARAMS"]

#: Table II of the paper.
PAPER_TRAINABLE_PARAMS = {"cnn": 387_798, "scnn": 239_198}

_DEFAULTS = dict(
    lstm_units=75,
    dense_units=15,
    first_filters=40,
    block1=((13, 20), (9, 20), (5, 10)),
    block2=((9, 20), (5, 20)),
    block3=((5, 20),),
    side_filters=20,
    final_kernel=3,
    **COMMON_DEFAULTS,
)


def _build(symmetric, symmetrize_output, name, **overrides):
    cfg = check.overrides({**_DEFAULTS, **(SYMMETRIC_DEFAULTS if symmetric else {})}, overrides)
    b = Blocks.from_config(symmetric, cfg)
    sequence = keras.Input((None, 5), name="sequence")
    features = b.sequence_features(sequence, cfg["lstm_units"], cfg["dense_units"])
    x = b.norm_act(
        b.pair_conv(features, cfg["first_filters"], 1, "first", "pairs"), "relu", "first"
    )
    for block in ("block1", "block2", "block3"):
        x = b.multi_kernel(x, cfg[block], block)
    side = b.pair_conv(sequence, cfg["side_filters"], 1, "side", "raw_pairs")
    side = b.norm_act(side, "relu", "side")
    x = keras.layers.Concatenate(name="merge")([x, side])
    out = b.final(x, cfg["final_kernel"])
    if symmetrize_output:
        out = Symmetrize(name="symmetrize", dtype="float32")(out)
    return keras.Model(sequence, out, name=name)


def _with_weights(model, weights, kind):
    from keras_symconv.pretrained import resolve_weights

    path = resolve_weights(weights, kind)
    if path is not None:
        try:
            if path.endswith(".keras"):
                # By order, not by layer path: a preset saved with one
                # layout (or compute, or fused) loads into every other.
                saved = keras.saving.load_model(path, safe_mode=True, compile=False)
                model.set_weights(saved.get_weights())
            else:
                model.load_weights(path)
        except ValueError as exc:
            raise ValueError(
                f"Argument `weights`: {path} does not fit this model (were the architecture "
                f"arguments changed?): {exc}"
            ) from exc
    return model


def build_rna_scnn(name="rna_scnn", weights=None, **kwargs):
    """The paper's RNA SCNN: symmetric by construction.

    Keyword arguments (defaults are the paper's): ``lstm_units`` (75),
    ``dense_units`` (15), ``first_filters`` (40), ``block1`` (``((13, 20),
    (9, 20), (5, 10))``, pairs of kernel size and filters), ``block2``
    (``((9, 20), (5, 20))``), ``block3`` (``((5, 20),)``), ``side_filters``
    (20), ``final_kernel`` (3), ``l2`` (1e-5, on conv kernels; 0 for none),
    ``batch_norm`` (True), ``synchronized_batch_norm`` (False; True makes
    batch statistics global across the replicas of a ``tf.distribute``
    strategy, so every worker also keeps the same moving statistics),
    ``batch_norm_momentum`` (0.99, Keras' default), ``output_bias`` (0.0,
    the paper's: the initial offset of the output logits, the final batch
    norm's ``beta``; the log-odds of a pair starts the output at the prior,
    see ``benchmarks/reproduce_rna.py``).

    How it computes (same function, same weights either way): ``fused``
    (True: each self-Cartesian product and the generating conv after it are
    one :class:`~keras_symconv.FusedSymmetryGenerating2D` on the sequence;
    False: the literal ``SelfCartesian`` + ``SymmetryGenerating2D`` graph, whose
    weights load into the fused model with ``set_weights``), ``layout``
    (``"upper"``, the default on TensorFlow and PyTorch: every map from the first
    generating layer to the output is kept in the upper-triangle layout of
    :mod:`keras_symconv.ops.upper`, half the activation memory, with
    :class:`~keras_symconv.UpperBatchNormalization` and a
    :class:`~keras_symconv.FromUpper` before the output; ``"full"``, the
    default on JAX, where the layers expand the upper layout to the full map:
    full maps), ``compute``
    (``"auto"``, the ``compute`` argument of every
    :class:`~keras_symconv.SymmetryPreserving2D`).

    ``weights``: None (random start), ``"strand16s"`` (the shipped preset
    trained on the 16S rRNA split, see :mod:`keras_symconv.pretrained` and
    ``symconv rna models``), a preset name, or a ``.keras`` /
    ``.weights.h5`` file. Weights load into any ``fused`` / ``layout`` /
    ``compute`` choice, not into changed architecture arguments.

    Returns:
        A Functional ``keras.Model``: ``(batch, L, 5) -> (batch, L, L, 1)``,
        built only from registered layers (``.keras`` files load with
        ``safe_mode=True``).

    Example:

    >>> model = build_rna_scnn()
    >>> sum(int(w.numpy().size) for w in model.trainable_weights)
    239318
    """
    return _with_weights(_build(True, False, name, **kwargs), weights, "scnn")


def build_rna_cnn(symmetrize_output=False, name=None, weights=None, **kwargs):
    """The paper's plain-CNN baseline, the same hyperparameters with ``Conv2D``.

    Args:
        symmetrize_output: return ``(Y + Y^T) / 2`` of the output map (the
            common after-the-fact symmetrization), a third model to compare.
        name: model name (default ``rna_cnn`` or ``rna_cnn_sym``).
        weights: as :func:`build_rna_scnn` (``"strand16s"``: the CNN preset).
        **kwargs: as :func:`build_rna_scnn`.
    """
    name = name or ("rna_cnn_sym" if symmetrize_output else "rna_cnn")
    return _with_weights(_build(False, symmetrize_output, name, **kwargs), weights, "cnn")
