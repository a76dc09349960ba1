"""Building blocks shared by the model builders (not public).

One mechanism builds both twins of every network: with ``symmetric=True``
the convolutions are symmetry generating (on a self-Cartesian product) or
preserving, otherwise plain ``Conv2D`` with the same kernel sizes and widths.
"""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv import _validation as check
from keras_symconv.layers import (
    FromUpper,
    FusedSymmetryGenerating2D,
    RunAfter,
    SelfCartesian,
    SymmetryGenerating2D,
    SymmetryPreserving2D,
    ToUpper,
    UpperBatchNormalization,
)

#: Arguments every builder takes, with their defaults (the paper's L2 1e-5).
COMMON_DEFAULTS = dict(
    l2=1e-5,
    batch_norm=True,
    synchronized_batch_norm=False,
    batch_norm_momentum=0.99,
    output_bias=0.0,
)

#: Arguments only the symmetric builders take (how the SCNN computes, not what).
# The upper layout halves the maps' memory, and the work of the batch norms
# and activations, where the layers compute in it (TensorFlow, PyTorch); on
# JAX they expand it to the full map, so the full layout is faster there.
SYMMETRIC_DEFAULTS = dict(
    fused=True, compute="auto", layout="full" if _backend.NAME == "jax" else "upper"
)


class Blocks:
    """Factory of conv / batch-norm / activation blocks for one network."""

    @classmethod
    def from_config(cls, symmetric, cfg):
        return cls(
            symmetric,
            cfg["l2"],
            cfg["batch_norm"],
            cfg["batch_norm_momentum"],
            cfg["synchronized_batch_norm"],
            fused=cfg.get("fused", False),
            compute=cfg.get("compute", "auto"),
            output_bias=cfg.get("output_bias", 0.0),
            layout=cfg.get("layout", "full"),
        )

    def __init__(
        self,
        symmetric,
        l2,
        batch_norm,
        batch_norm_momentum,
        synchronized_batch_norm,
        fused=False,
        compute="auto",
        output_bias=0.0,
        layout="full",
    ):
        self.symmetric = symmetric
        self.regularizer = keras.regularizers.L2(l2) if l2 else None
        self.batch_norm = batch_norm
        self.momentum = batch_norm_momentum
        self.synchronized = synchronized_batch_norm
        self.fused = bool(fused)
        self.compute = compute
        self.output_bias = float(output_bias)
        check.choice(layout, "layout", ("full", "upper"))
        # Maps between layers in the upper-triangle layout (symmetric networks only).
        self.upper = symmetric and layout == "upper"

    def conv(self, filters, kernel_size, name, generating=False, **extra):
        """'same' conv with bias and the kernel regularizer."""
        kwargs = dict(padding="same", kernel_regularizer=self.regularizer, name=name, **extra)
        if not self.symmetric:
            cls = keras.layers.Conv2D
        elif generating:
            cls = SymmetryGenerating2D
            kwargs["layout"] = "upper" if self.upper else "full"
        else:
            cls = SymmetryPreserving2D
            kwargs["compute"] = self.compute
            kwargs["layout"] = "upper" if self.upper else "full"
        return cls(filters, kernel_size, **kwargs)

    def pair_conv(self, sequence, filters, kernel_size, name, pairs_name):
        """Self-Cartesian product of ``sequence`` then a (generating) conv.

        In a symmetric network built with ``fused=True`` this is one
        :class:`FusedSymmetryGenerating2D` on the sequence (same weights, same
        output, no ``(L, L, 2n)`` tensor); otherwise the literal graph, a
        ``SelfCartesian`` layer named ``pairs_name`` and the conv (whose
        output is in the network's layout).
        """
        if self.symmetric and self.fused:
            return FusedSymmetryGenerating2D(
                filters,
                kernel_size,
                padding="same",
                kernel_regularizer=self.regularizer,
                layout="upper" if self.upper else "full",
                name=name,
            )(sequence)
        pairs = SelfCartesian(name=pairs_name)(sequence)
        return self.conv(filters, kernel_size, name, generating=True)(pairs)

    def map_input(self, x, name):
        """A symmetric input map, in the layout of this network's maps."""
        return ToUpper(name=name)(x) if self.upper else x

    def norm_act(self, x, activation, name, beta_initializer="zeros", dtype=None):
        if self.batch_norm:
            bn = UpperBatchNormalization if self.upper else keras.layers.BatchNormalization
            x = bn(
                momentum=self.momentum,
                synchronized=self.synchronized,
                beta_initializer=beta_initializer,
                name=f"{name}_bn",
                dtype=dtype,
            )(x)
        return keras.layers.Activation(activation, name=f"{name}_{activation}", dtype=dtype)(x)

    def final(self, x, kernel_size, name="final"):
        """The output: conv to 1 channel -> (BN) -> sigmoid.

        ``output_bias`` is the initial offset of the logits: the batch
        norm's ``beta`` (or the conv's bias without batch norm). 0 is the
        paper's; the log-odds of a pair makes the initial output the prior.
        The layers after the conv compute in float32 under every dtype
        policy, so that a mixed-precision network's probabilities (and the
        loss's logarithms of them) keep float32's resolution, as Keras'
        mixed-precision guide advises for a network's output.
        """
        init = keras.initializers.Constant(self.output_bias)
        bias = {} if self.batch_norm else {"bias_initializer": init}
        x = self.conv(1, kernel_size, name, **bias)(x)
        x = self.norm_act(x, "sigmoid", name, beta_initializer=init, dtype="float32")
        return FromUpper(name="full_map", dtype="float32")(x) if self.upper else x

    def multi_kernel(self, x, specs, name, activation="relu"):
        """Parallel convs ``[(kernel_size, filters), ...]`` -> concat -> BN -> act.

        In a symmetric network with maps in the upper layout each conv after
        the first starts once the previous one is done
        (:class:`~keras_symconv.RunAfter`): the same result, less memory held
        at once; with full maps chaining holds more, so it is not used there
        (``benchmarks/RESULTS.md``, "End to end").
        """
        outs = []
        for k, f in specs:
            inputs = x
            if self.upper and outs:
                inputs = RunAfter(name=f"{name}_k{k}_after")([x, outs[-1]])
            outs.append(self.conv(f, k, name=f"{name}_k{k}")(inputs))
        if len(outs) > 1:
            x = keras.layers.Concatenate(name=f"{name}_cat")(outs)
        else:
            x = outs[0]
        return self.norm_act(x, activation, name)

    def sequence_features(self, sequence, lstm_units, dense_units):
        """BiLSTM -> per-position Dense -> concat the input: ``(batch, L, dense + n)``.

        A plain ``Dense`` on ``(batch, L, 2 * lstm_units)``: ``TimeDistributed``
        gives wrong shapes in Keras 3 when ``predict`` sees a second length.
        """
        h = keras.layers.Bidirectional(
            keras.layers.LSTM(lstm_units, return_sequences=True), name="bilstm"
        )(sequence)
        h = keras.layers.Dense(dense_units, name="per_position_dense")(h)
        return keras.layers.Concatenate(name="features")([h, sequence])
