"""Protein contact-map networks (the paper's section IV-C, figures 5 and 6).

Inputs: per-residue features ``(L, n1d)`` (default 25) and symmetric pairwise
features ``(L, L, n2d)`` (default 3: co-evolution scores and sequence
separation). Output: contact probabilities ``(L, L, 1)``.

1. BiLSTM(75) -> Dense(15) per residue, concat the 1D features -> ``(L, 40)``;
   self-Cartesian product -> ``(L, L, 80)``.
2. conv k=1 x64 -> BN -> ReLU (SCNN: symmetry generating).
3. concat the 2D features -> 67 channels.
4. multi-kernel blocks, each parallel convs -> concat -> BN -> ReLU:
   (13 x48, 9 x48, 5 x48), (13 x32, 9 x32), (9 x32, 5 x32).
5. re-inject: concat the step-2 map and the 2D features.
6. conv k=5 x32 -> BN -> ReLU; conv k=3 x1 -> BN -> sigmoid.

All convs 'same', bias, L2 1e-5; in the SCNN every conv after step 2 is
symmetry preserving. The paper gives the structure but not every width;
these widths are chosen so that the trainable counts land near Table III
with one structure for both models: CNN 2,427,668 (Table III 2,465,000,
-1.5 %), SCNN 1,364,788 (1,326,000, +2.9 %). Only symmetric maps are
concatenated after step 2 (never the raw self-Cartesian product), so the
SCNN's output is symmetric.
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

__all__ = ["build_contact_scnn", "build_contact_cnn", "PAPER_CONTACT_TRAINABLE_PARAMS"]

#: Table III of the paper (rounded there to thousands).
PAPER_CONTACT_TRAINABLE_PARAMS = {"cnn": 2_465_000, "scnn": 1_326_000}

_DEFAULTS = dict(
    n1d=25,
    n2d=3,
    lstm_units=75,
    dense_units=15,
    first_filters=64,
    blocks=(((13, 48), (9, 48), (5, 48)), ((13, 32), (9, 32)), ((9, 32), (5, 32))),
    final_blocks=(((5, 32),),),
    final_kernel=3,
    **COMMON_DEFAULTS,
)


def _build(symmetric, symmetrize_output, name, **overrides):
    cfg = check.overrides({**_DEFAULTS, **(SYMMETRIC_DEFAULTS if symmetric else {})}, overrides)
    b = Blocks.from_config(symmetric, cfg)
    seq = keras.Input((None, cfg["n1d"]), name="sequence_features")
    pair = keras.Input((None, None, cfg["n2d"]), name="pair_features")
    features = b.sequence_features(seq, cfg["lstm_units"], cfg["dense_units"])
    first = b.norm_act(
        b.pair_conv(features, cfg["first_filters"], 1, "first", "pairs"), "relu", "first"
    )
    pair_map = b.map_input(pair, "pair_features_upper")
    x = keras.layers.Concatenate(name="with_pair_features")([first, pair_map])
    for k, specs in enumerate(cfg["blocks"], start=1):
        x = b.multi_kernel(x, specs, f"block{k}")
    x = keras.layers.Concatenate(name="reinject")([x, first, pair_map])
    for k, specs in enumerate(cfg["final_blocks"], start=1):
        x = b.multi_kernel(x, specs, f"final_block{k}")
    out = b.final(x, cfg["final_kernel"])
    if symmetrize_output:
        out = Symmetrize(name="symmetrize", dtype="float32")(out)
    return keras.Model([seq, pair], out, name=name)


def build_contact_scnn(name="contact_scnn", **kwargs):
    """The contact-map SCNN: symmetric by construction.

    Keyword arguments (defaults in the module docstring): ``n1d``, ``n2d``,
    ``lstm_units``, ``dense_units``, ``first_filters``, ``blocks`` (a tuple of
    blocks, each a tuple of ``(kernel_size, filters)``), ``final_blocks``,
    ``final_kernel``, ``l2``, ``batch_norm``, ``synchronized_batch_norm``,
    ``batch_norm_momentum``, ``output_bias`` (0.0: the initial logit offset,
    as in :func:`~keras_symconv.models.build_rna_scnn`); and ``fused`` (True), ``layout``
    (``"upper"``, the default on TensorFlow and PyTorch: the pair features are moved to
    the upper layout with :class:`~keras_symconv.ToUpper`; ``"full"`` on JAX) and ``compute``
    (``"auto"``), which change how the SCNN computes but not what, as in
    :func:`~keras_symconv.models.build_rna_scnn`.

    Returns:
        A Functional ``keras.Model`` with inputs ``[(batch, L, n1d),
        (batch, L, L, n2d)]`` and output ``(batch, L, L, 1)``.

    Example:

    >>> model = build_contact_scnn()
    >>> sum(int(w.numpy().size) for w in model.trainable_weights)
    1364788
    """
    return _build(True, False, name, **kwargs)


def build_contact_cnn(symmetrize_output=False, name=None, **kwargs):
    """The plain-CNN twin of :func:`build_contact_scnn` (same structure and widths).

    Args:
        symmetrize_output: return ``(Y + Y^T) / 2`` of the output map.
        name: default ``contact_cnn`` or ``contact_cnn_sym``.
        **kwargs: as :func:`build_contact_scnn`.
    """
    name = name or ("contact_cnn_sym" if symmetrize_output else "contact_cnn")
    return _build(False, symmetrize_output, name, **kwargs)
