"""Layers that make, mirror, convert or order pair maps (no convolution)."""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv.layers._base import upper_input_shape, upper_output_shape
from keras_symconv.ops import portable

if _backend.TENSORFLOW:
    import tensorflow as tf

    from keras_symconv.ops import upper
else:
    upper = portable  # to_upper and from_upper with keras.ops


@keras.saving.register_keras_serializable(package="keras_symconv")
class SelfCartesian(keras.layers.Layer):
    """Self-Cartesian product of a sequence.

    ``y[b, i, j] = concat(x[b, i], x[b, j])``. Transposing ``y``'s two spatial
    axes swaps its channel halves.

    Input shape:
        ``(batch, L, n)``; ``L`` may be ``None``.

    Output shape:
        ``(batch, L, L, 2n)``.

    Example:

    >>> import numpy as np
    >>> y = SelfCartesian()(np.arange(6, dtype="float32").reshape(1, 3, 2))
    >>> y.numpy()[0, 0, 2].tolist()
    [0.0, 1.0, 4.0, 5.0]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "SelfCartesian expects a 3D input (batch, L, n). "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        if not _backend.TENSORFLOW:
            return portable.self_cartesian(inputs)
        shape = tf.shape(inputs)
        full = tf.stack([shape[0], shape[1], shape[1], shape[2]])
        rows = tf.broadcast_to(inputs[:, :, None, :], full)
        cols = tf.broadcast_to(inputs[:, None, :, :], full)
        return tf.concat([rows, cols], axis=-1)

    def compute_output_shape(self, input_shape):
        batch, length, channels = input_shape
        return (batch, length, length, None if channels is None else 2 * channels)


@keras.saving.register_keras_serializable(package="keras_symconv")
class Symmetrize(keras.layers.Layer):
    """``(Y + Y^T) / 2`` over the two spatial axes of ``(batch, L, L, c)``.

    The common way to make a plain CNN's pair map symmetric after the fact
    (SPOT-RNA, UFold, trRosetta style), for comparison with networks that are
    symmetric by construction.
    """

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "Symmetrize expects a 4D input (batch, L, L, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        return portable.symmetrize(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_symconv")
class ToUpper(keras.layers.Layer):
    """A full symmetric map ``(batch, L, L, c)`` -> its upper-triangle layout.

    ``(batch, L (L + 1) / 2, c)``: the entries on and above the diagonal, in
    the order of :mod:`keras_symconv.ops.upper` (entries below the diagonal are
    not read, so the input must be symmetric for the two to mean the same).
    For maps that enter a network built with ``layout="upper"``, such as the
    contact networks' pair features.
    """

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "ToUpper expects a 4D input (batch, L, L, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        return upper.to_upper(inputs)

    def compute_output_shape(self, input_shape):
        batch, side, _, channels = input_shape
        return upper_output_shape((batch, side, side, channels))


@keras.saving.register_keras_serializable(package="keras_symconv")
class FromUpper(keras.layers.Layer):
    """A map in the upper-triangle layout -> the full map ``(batch, L, L, c)``.

    Every entry below the diagonal is read from its mirror image, so the
    output is bitwise symmetric.
    """

    def build(self, input_shape):
        upper_input_shape(self, input_shape)

    def call(self, inputs):
        return upper.from_upper(inputs)

    def compute_output_shape(self, input_shape):
        return upper_input_shape(self, input_shape)


@keras.saving.register_keras_serializable(package="keras_symconv")
class RunAfter(keras.layers.Layer):
    """``RunAfter()([x, previous])`` is ``x``, available once ``previous`` is computed.

    Orders otherwise independent branches of a graph without changing what
    they compute: no weights, no copy of ``x`` (an identity under a control
    dependency), no gradient to ``previous``.

    The symmetric builders chain the parallel convolutions of a
    multi-kernel block with it (maps in the upper layout, their default):
    a block-computed symmetric convolution holds its blocks and their
    assembly (about 2.5 output maps) while it runs, and TensorFlow runs
    independent branches at the same time, so three such convolutions at
    once hold more memory than the block's concatenation needs (measured in
    ``benchmarks/RESULTS.md``, "End to end").

    Example:

    >>> x = tf.ones((1, 3, 2))
    >>> done = tf.zeros((1, 5))
    >>> RunAfter()([x, done]).shape
    TensorShape([1, 3, 2])
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def build(self, input_shape):
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2):
            raise ValueError(
                "RunAfter expects a list of two inputs [x, previous]. "
                f"Received: input_shape={input_shape}"
            )

    def call(self, inputs):
        x, previous = inputs
        if not _backend.TENSORFLOW:
            return x  # JAX and PyTorch order nothing by control edges
        with tf.control_dependencies([previous]):
            return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
