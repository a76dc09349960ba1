"""Symmetry-generating convolutions: a self-Cartesian product to a symmetric map."""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv import _validation as check
from keras_symconv.layers._base import SymmetricConv2D, kernel_ops, upper_output_shape
from keras_symconv.ops import portable

if _backend.TENSORFLOW:
    import tensorflow as tf

    from keras_symconv.ops import upper
    from keras_symconv.ops.convolution import full_conv
    from keras_symconv.ops.generating import fused_generating_conv


@keras.saving.register_keras_serializable(package="keras_symconv")
class SymmetryGenerating2D(SymmetricConv2D):
    """Convolution of a self-Cartesian product with a symmetric output.

    The kernel ``W (C, C, 2n, F)`` satisfies ``W[a, b] == W[b, a]`` and
    ``W[a, b, k] == W[a, b, k + n]``, so for an input ``y`` with
    ``y[i, j] = concat(x[i], x[j])`` the output is symmetric (Theorem 1).
    The only trainable kernel variable is ``packed_kernel`` of shape
    ``(C(C+1)/2, n, F)``; its gradient is the paper's eq. 3.

    Args:
        filters: number of output channels ``F``.
        kernel_size: ``C``, an integer or a pair of equal integers.
        strides: an integer or a pair of equal integers. Default 1.
        padding: ``"same"`` (default) or ``"valid"``, case-insensitive.
        dilation_rate: an integer or a pair of equal integers. Default 1.
            Cannot exceed 1 together with ``strides``, as in ``Conv2D``.
        activation: activation function or name; ``None`` for linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the *full* kernel (it is called
            with the full shape, so fans are those of a ``Conv2D``; one entry
            per packed slot is kept). Default :class:`HalfGlorotUniform`
            (also ``"half_glorot_uniform"``, ``"half_glorot_normal"``).
        bias_initializer: default ``"zeros"``.
        kernel_regularizer: applied to the packed kernel, i.e. to each free
            weight once (not to the full kernel, where it would count a weight
            two or four times).
        bias_regularizer, activity_regularizer: as in ``Conv2D``.
        kernel_constraint: applied to the packed kernel.
        bias_constraint: as in ``Conv2D``.
        layout: ``"full"`` (default) returns the full map; ``"upper"`` its
            upper triangle in the layout of :mod:`keras_symconv.ops.upper`
            (computed in full, then the entries on and above the diagonal
            kept), for a network whose maps are in that layout.
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Raises:
        ValueError: for a non-square ``kernel_size``, unequal ``strides`` or
            ``dilation_rate``, ``padding`` other than same/valid,
            ``filters < 1``, and at build time an input that is not 4D, not
            square, or has an odd channel count.

    Input shape:
        ``(batch, L, L, 2n)``, a self-Cartesian product.

    Output shape:
        ``(batch, L', L', filters)``, symmetric in its two spatial axes (or
        ``(batch, L' (L' + 1) / 2, filters)`` with ``layout="upper"``).

    Example:

    >>> import keras, keras_symconv as ks
    >>> x = keras.Input((None, 4))
    >>> y = ks.SelfCartesian()(x)
    >>> z = ks.SymmetryGenerating2D(8, 3)(y)
    >>> z.shape
    (None, None, None, 8)
    """

    _generating = True

    def __init__(self, *args, layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = check.choice(layout, "layout", ("full", "upper"))

    def convolution_op(self, inputs, kernel, bias):
        if not _backend.TENSORFLOW:
            outputs = portable.conv(
                inputs, kernel, bias, self.strides, self.dilation_rate, self.padding
            )
            return portable.to_upper(outputs) if self.layout == "upper" else outputs
        outputs = full_conv(inputs, kernel, bias, self._spec())
        return upper.to_upper(outputs) if self.layout == "upper" else outputs

    def compute_output_shape(self, input_shape):
        full = super().compute_output_shape(input_shape)
        return upper_output_shape(full) if self.layout == "upper" else full

    def get_config(self):
        config = super().get_config()
        config["layout"] = self.layout
        return config


@keras.saving.register_keras_serializable(package="keras_symconv")
class FusedSymmetryGenerating2D(SymmetricConv2D):
    """``SelfCartesian`` then ``SymmetryGenerating2D``, without the pair tensor.

    Takes the sequence ``(batch, L, n)`` and returns exactly what
    ``SymmetryGenerating2D`` returns on its self-Cartesian product
    ``(batch, L, L, 2n)`` with the same packed kernel, borders included, for
    every kernel size, padding, stride and dilation; the ``(L, L, 2n)``
    tensor is never built (the computation is in
    :mod:`keras_symconv.ops.generating`). The output is bitwise symmetric.
    Its ``packed_kernel`` has the shape of the unfused layer's, so weights
    move between the two with ``get_weights``/``set_weights``.

    Args:
        filters: number of output channels ``F``.
        kernel_size: ``C``, an integer or a pair of equal integers.
        strides: an integer or a pair of equal integers. Default 1.
        padding: ``"same"`` (default) or ``"valid"``, case-insensitive.
        dilation_rate: an integer or a pair of equal integers. Default 1.
            Cannot exceed 1 together with ``strides``, as in ``Conv2D``.
        activation: activation function or name; ``None`` for linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the *full* kernel ``(C, C, 2n,
            F)``, as in :class:`SymmetryGenerating2D`.
        bias_initializer: default ``"zeros"``.
        kernel_regularizer, kernel_constraint: applied to the packed kernel.
        bias_regularizer, activity_regularizer, bias_constraint: as in
            ``Conv2D``.
        layout: ``"full"`` (default) returns the full map, ``"upper"`` only
            its upper triangle in the layout of :mod:`keras_symconv.ops.upper`
            (no full map is built).
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Input shape:
        ``(batch, L, n)``.

    Output shape:
        ``(batch, L', L', filters)``, or ``(batch, L' (L' + 1) / 2, filters)``
        with ``layout="upper"``.

    Example:

    >>> import numpy as np, keras_symconv as ks
    >>> z = ks.FusedSymmetryGenerating2D(8, 3)(np.ones((1, 5, 4), "float32"))
    >>> z.shape
    TensorShape([1, 5, 5, 8])
    """

    _generating = True

    def __init__(self, *args, layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = check.choice(layout, "layout", ("full", "upper"))
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                "FusedSymmetryGenerating2D expects a 3D input (batch, L, n). "
                f"Received: input_shape={input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                "The channel dimension of the input of FusedSymmetryGenerating2D must be "
                f"known. Received: input_shape={input_shape}"
            )
        n = int(input_shape[-1])
        super().build((input_shape[0], input_shape[1], input_shape[1], 2 * n))
        self._expand_half = kernel_ops.make_kernel_expander(self.kernel_size, generating=False)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: n})

    def _call_kernel(self):
        # The packed kernel expanded as a preserving one: (C, C, n, F).
        if not _backend.TENSORFLOW:
            return self._expand_half(keras.ops.convert_to_tensor(self.packed_kernel))
        return self._expand_half(tf.convert_to_tensor(self.packed_kernel))

    def convolution_op(self, inputs, kernel, bias):
        if not _backend.TENSORFLOW:
            return portable.fused_generating_conv(
                inputs, kernel, bias, self.strides, self.dilation_rate, self.padding, self.layout
            )
        return fused_generating_conv(
            inputs, kernel, bias, self.strides, self.dilation_rate, self.padding, self.layout
        )

    def compute_output_shape(self, input_shape):
        batch, length, _ = input_shape
        full = super().compute_output_shape((batch, length, length, None))
        return upper_output_shape(full) if self.layout == "upper" else full

    def get_config(self):
        config = super().get_config()
        config["layout"] = self.layout
        return config

    def to_conv2d(self):
        raise NotImplementedError(
            "FusedSymmetryGenerating2D takes the sequence, not a pair tensor: for a stock "
            "Conv2D, move its weights into a SymmetryGenerating2D after a SelfCartesian and "
            "call to_conv2d() there."
        )
