"""The private base of the symmetric convolutions and shape helpers of the upper layout."""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv import _validation as check
from keras_symconv.initializers import HalfGlorotNormal, HalfGlorotUniform
from keras_symconv.ops import portable, slots
from keras_symconv.ops.geometry import Spec

if _backend.TENSORFLOW:
    import tensorflow as tf

    from keras_symconv.ops import kernels as kernel_ops
    from keras_symconv.ops.convolution import full_conv
else:
    # Any other backend: keras.ops (keras_symconv.ops.portable).
    kernel_ops = portable

_INITIALIZER_ALIASES = {
    "half_glorot_uniform": HalfGlorotUniform,
    "half_glorot_normal": HalfGlorotNormal,
}


def get_initializer(identifier):
    """``keras.initializers.get``, also taking ``"half_glorot_uniform"``/``"_normal"``."""
    if isinstance(identifier, str) and identifier.lower() in _INITIALIZER_ALIASES:
        return _INITIALIZER_ALIASES[identifier.lower()]()
    return keras.initializers.get(identifier)


def upper_input_shape(layer, input_shape):
    """``(batch, N, c)`` in the upper layout -> the full map's ``(batch, L, L, c)``."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} takes a map in the upper layout, a 3D "
            f"input (batch, L (L + 1) / 2, channels). Received: input_shape={input_shape}"
        )
    n = input_shape[1]
    side = None if n is None else portable.side_of(int(n), f"input of layer {layer.name!r}")
    return (input_shape[0], side, side, input_shape[2])


def upper_output_shape(full_shape):
    """A full map's shape ``(batch, L, L, c)`` -> its upper layout's ``(batch, N, c)``."""
    batch, side, _, channels = full_shape
    return (batch, None if side is None else portable.upper_length(side), channels)


class PackedInitializer:
    """Draws a full kernel with a Keras initializer, keeps one entry per slot.

    So that the wrapped initializer sees the fans of the full
    ``(C, C, in_channels, filters)`` kernel, as in a ``Conv2D``.
    """

    def __init__(self, initializer, full_shape, generating):
        self.initializer = initializer
        self.full_shape = full_shape
        self.generating = generating

    def __call__(self, shape, dtype=None):
        full = self.initializer(self.full_shape, dtype=dtype)
        packed = kernel_ops.pack_kernel(full, self.generating)
        if tuple(packed.shape) != tuple(shape):
            raise ValueError(
                f"Internal error: packed initial kernel has shape "
                f"{tuple(packed.shape)}, expected {tuple(shape)}."
            )
        return packed


class SymmetricConv2D(keras.layers.Layer):
    """The symmetric convolutions' shared machinery (not public).

    ``call`` expands the packed kernel, casts it and the bias to the input's
    dtype, calls :meth:`convolution_op` (which adds the bias: some
    strategies add it where it is cheaper) and applies the activation, once,
    here. Subclasses set ``_generating`` and override
    :meth:`convolution_op`.
    """

    _generating = False

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="half_glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = check.integer(filters, "filters")
        self.kernel_size = check.square(kernel_size, "kernel_size")
        self.strides = check.square(strides, "strides")
        self.dilation_rate = check.square(dilation_rate, "dilation_rate")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "`strides > 1` is not supported together with "
                f"`dilation_rate > 1` (as in keras.layers.Conv2D). Received: "
                f"strides={strides!r} and dilation_rate={dilation_rate!r}"
            )
        self.padding = check.padding(padding)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = get_initializer(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _spec(self, **kwargs):
        return Spec(
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation=self.dilation_rate,
            padding=self.padding,
            **kwargs,
        )

    def _validate_input_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4D input (batch, L, L, "
                f"channels). Received: input_shape={input_shape}"
            )
        height, width, channels = input_shape[1:]
        if height is not None and width is not None and height != width:
            raise ValueError(
                f"{type(self).__name__} expects a square input (H == W). "
                f"Received: input_shape={input_shape}"
            )
        if channels is None:
            raise ValueError(
                f"The channel dimension of the input of {type(self).__name__} "
                f"must be known. Received: input_shape={input_shape}"
            )
        if self._generating and channels % 2:
            raise ValueError(
                "SymmetryGenerating2D expects a self-Cartesian product with an "
                "even channel count 2n. Received: input_shape="
                f"{input_shape} (channels={channels})"
            )
        return int(channels)

    def build(self, input_shape):
        in_channels = self._validate_input_shape(input_shape)
        full_shape = slots.full_kernel_shape(self.kernel_size, in_channels, self.filters)
        self.packed_kernel = self.add_weight(
            name="packed_kernel",
            shape=slots.packed_kernel_shape(
                self.kernel_size, in_channels, self.filters, self._generating
            ),
            initializer=PackedInitializer(self.kernel_initializer, full_shape, self._generating),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=True,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None
        self._expand = kernel_ops.make_kernel_expander(self.kernel_size, self._generating)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})

    @property
    def kernel(self):
        """The full expanded kernel ``(C, C, in_channels, filters)``."""
        if not self.built:
            raise ValueError(f"Layer {self.name!r} has no kernel before it is built.")
        if _backend.TENSORFLOW:
            # A tensor, never the variable itself: tf.custom_gradient rejects
            # variable arguments on eager calls under a GradientTape.
            return self._expand(tf.convert_to_tensor(self.packed_kernel))
        return self._expand(keras.ops.convert_to_tensor(self.packed_kernel))

    def _call_kernel(self):
        """The kernel :meth:`convolution_op` takes (the full one here)."""
        return self.kernel

    def convolution_op(self, inputs, kernel, bias):
        """The convolution of ``inputs`` with ``kernel``, plus ``bias`` (or ``None``)."""
        if _backend.TENSORFLOW:
            return full_conv(inputs, kernel, bias, self._spec())
        return portable.conv(inputs, kernel, bias, self.strides, self.dilation_rate, self.padding)

    def call(self, inputs):
        kernel = keras.ops.cast(self._call_kernel(), inputs.dtype)
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if self.use_bias and dtype in ("float16", "bfloat16"):
            # The bias gradient sums the whole map: in float32, where a
            # 16-bit sum of many terms stops growing. The bias is added
            # to the float32 cast of the output, which autodiff turns into
            # a float32 gradient sum (rounded once, where the layer's
            # autocast bias meets the variable).
            bias = keras.ops.cast(self.bias, "float32")
            outputs = self.convolution_op(inputs, kernel, None)
            outputs = keras.ops.cast(keras.ops.cast(outputs, "float32") + bias, dtype)
        else:
            bias = keras.ops.cast(self.bias, inputs.dtype) if self.use_bias else None
            outputs = self.convolution_op(inputs, kernel, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, length = input_shape[0], input_shape[1]
        if length is None:
            length = input_shape[2]
        out = self._spec().output_side(length)
        return (batch, out, out, self.filters)

    def to_conv2d(self):
        """An equivalent, built ``keras.layers.Conv2D`` holding the full kernel.

        For deployment where only stock Keras layers may appear. It gives the
        same outputs; it does not keep the symmetry under further training.
        """
        if not self.built:
            raise ValueError(f"Layer {self.name!r} must be built before to_conv2d().")
        conv = keras.layers.Conv2D(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            activation=self.activation,
            use_bias=self.use_bias,
            dtype=self.dtype_policy,
            name=f"{self.name}_conv2d",
        )
        full = keras.ops.convert_to_numpy(self.kernel)
        conv.build((None, None, None, full.shape[2]))
        weights = [full]
        if self.use_bias:
            weights.append(keras.ops.convert_to_numpy(self.bias))
        conv.set_weights(weights)
        return conv

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config
