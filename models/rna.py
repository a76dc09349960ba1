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

from keras_symconv.layers import (
    SelfCartesian,
    Symmetrize,
    SymmetryGenerating2D,
    SymmetryPreserving2D,
)

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
    l2=1e-5,
    batch_norm=True,
    synchronized_batch_norm=False,
    batch_norm_momentum=0.99,
)


def _build(symmetric, symmetrize_output, name, **overrides):
    unknown = set(overrides) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown argument(s): {sorted(unknown)}")
    cfg = {**_DEFAULTS, **overrides}
    regularizer = keras.regularizers.L2(cfg["l2"]) if cfg["l2"] else None

    def conv(filters, kernel_size, generating=False, name=None):
        if symmetric:
            cls = SymmetryGenerating2D if generating else SymmetryPreserving2D
            return cls(
                filters, kernel_size, padding="same", kernel_regularizer=regularizer, name=name
            )
        return keras.layers.Conv2D(
            filters, kernel_size, padding="same", kernel_regularizer=regularizer, name=name
        )

    def norm_act(x, activation, name):
        if cfg["batch_norm"]:
            x = keras.layers.BatchNormalization(
                momentum=cfg["batch_norm_momentum"],
                synchronized=cfg["synchronized_batch_norm"],
                name=f"{name}_bn",
            )(x)
        return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)

    def block(x, specs, name):
        outs = [
            conv(f, k, name=f"{name}_k{k}")(x)
            for k, f in specs  # (kernel, filters)
        ]
        x = outs[0] if len(outs) == 1 else keras.layers.Concatenate(name=f"{name}_cat")(outs)
        return norm_act(x, "relu", name)

    sequence = keras.Input((None, 5), name="sequence")
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(cfg["lstm_units"], return_sequences=True), name="bilstm"
    )(sequence)
    h = keras.layers.Dense(cfg["dense_units"], name="per_position_dense")(h)
    h = keras.layers.Concatenate(name="features")([h, sequence])
    pairs = SelfCartesian(name="pairs")(h)
    x = norm_act(
        conv(cfg["first_filters"], 1, generating=True, name="first")(pairs), "relu", "first"
    )
    x = block(x, [(k, f) for k, f in cfg["block1"]], "block1")
    x = block(x, [(k, f) for k, f in cfg["block2"]], "block2")
    x = block(x, [(k, f) for k, f in cfg["block3"]], "block3")
    side = SelfCartesian(name="raw_pairs")(sequence)
    side = norm_act(
        conv(cfg["side_filters"], 1, generating=True, name="side")(side), "relu", "side"
    )
    x = keras.layers.Concatenate(name="merge")([x, side])
    x = conv(1, cfg["final_kernel"], name="final")(x)
    out = norm_act(x, "sigmoid", "final")
    if symmetrize_output:
        out = Symmetrize(name="symmetrize")(out)
    return keras.Model(sequence, out, name=name)


def build_rna_scnn(name="rna_scnn", **kwargs):
    """The paper's RNA SCNN: symmetric by construction.

    Keyword arguments (defaults are the paper's): ``lstm_units`` (75),
    ``dense_units`` (15), ``first_filters`` (40), ``block1`` (``((13, 20),
    (9, 20), (5, 10))``, pairs of kernel size and filters), ``block2``
    (``((9, 20), (5, 20))``), ``block3`` (``((5, 20),)``), ``side_filters``
    (20), ``final_kernel`` (3), ``l2`` (1e-5, on conv kernels; 0 for none),
    ``batch_norm`` (True), ``synchronized_batch_norm`` (False; True makes
    batch statistics global across the replicas of a ``tf.distribute``
    strategy, so every worker also keeps the same moving statistics),
    ``batch_norm_momentum`` (0.99, Keras' default).

    Returns:
        A Functional ``keras.Model``: ``(batch, L, 5) -> (batch, L, L, 1)``,
        built only from registered layers (``.keras`` files load with
        ``safe_mode=True``).

    Example:

    >>> model = build_rna_scnn()
    >>> sum(int(w.numpy().size) for w in model.trainable_weights)
    239318
    """
    return _build(True, False, name, **kwargs)


def build_rna_cnn(symmetrize_output=False, name=None, **kwargs):
    """The paper's plain-CNN baseline, the same hyperparameters with ``Conv2D``.

    Args:
        symmetrize_output: return ``(Y + Y^T) / 2`` of the output map (the
            common after-the-fact symmetrization), a third model to compare.
        name: model name (default ``rna_cnn`` or ``rna_cnn_sym``).
        **kwargs: as :func:`build_rna_scnn`.
    """
    name = name or ("rna_cnn_sym" if symmetrize_output else "rna_cnn")
    return _build(False, symmetrize_output, name, **kwargs)
