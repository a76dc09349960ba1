"""Symmetry-structured Keras layers.

- :class:`SelfCartesian`: ``(batch, L, n) -> (batch, L, L, 2n)``,
  ``y[i, j] = concat(x[i], x[j])``.
- :class:`SymmetryGenerating2D`: a convolution of a self-Cartesian product
  whose output is symmetric (the paper's Theorem 1).
- :class:`SymmetryPreserving2D`: a convolution that maps symmetric feature
  maps to symmetric feature maps.

Both convolutions hold only the packed triangular kernel as a trainable
variable, expand it to the full kernel in ``call`` with a gather from a
constant index map, and differentiate the expansion with the paper's update
rules (eqs. 3 and 5) written out (:mod:`keras_symconv.kernels`). They take
the arguments of ``keras.layers.Conv2D`` so one can replace the other, and
reject what cannot stay symmetric.

:class:`ItemScorer` is the per-item output layer of the sequential
recommenders (:mod:`keras_symconv.models.cosrec`); it lives here so that
``import keras_symconv`` registers it for loading ``.keras`` files.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_symconv import kernels, triangular, upper
from keras_symconv.initializers import HalfGlorotNormal, HalfGlorotUniform

__all__ = [
    "SelfCartesian",
    "SymmetryGenerating2D",
    "SymmetryPreserving2D",
    "Symmetrize",
    "FusedSymmetryGenerating2D",
    "ToUpper",
    "FromUpper",
    "UpperBatchNormalization",
    "RunAfter",
    "ItemScorer",
]

_INITIALIZER_ALIASES = {
    "half_glorot_uniform": HalfGlorotUniform,
    "half_glorot_normal": HalfGlorotNormal,
}


def _get_initializer(identifier):
    if isinstance(identifier, str) and identifier.lower() in _INITIALIZER_ALIASES:
        return _INITIALIZER_ALIASES[identifier.lower()]()
    return keras.initializers.get(identifier)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    if value < 1:
        raise ValueError(f"Argument `{name}` must be a positive integer. Received: {name}={value}")
    return int(value)


def _square(value, name):
    """Normalise an int or a pair to one int; a pair must be equal."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"Argument `{name}` must be an integer or a pair of equal "
                f"integers. Received: {name}={value!r}"
            )
        first, second = (_positive_int(v, name) for v in value)
        if first != second:
            raise ValueError(
                f"Argument `{name}` must be the same on both spatial axes, "
                f"or the output is not symmetric. Received: {name}={value!r}"
            )
        return first
    return _positive_int(value, name)


def _normalize_padding(padding):
    if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
        raise ValueError(
            f"Argument `padding` must be 'same' or 'valid'. Received: padding={padding!r}"
        )
    return padding.lower()


def _conv_output_length(length, kernel_size, stride, dilation, padding):
    if length is None:
        return None
    if padding == "same":
        return math.ceil(length / stride)
    effective = (kernel_size - 1) * dilation + 1
    return max(0, (length - effective) // stride + 1)


def _check_layout(layout):
    if layout not in ("full", "upper"):
        raise ValueError(f"`layout` must be 'full' or 'upper'. Received: layout={layout!r}")
    return layout


def _upper_input_shape(layer, input_shape):
    """``(batch, N, c)`` in the upper layout -> the full map's ``(batch, L, L, c)``."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} takes a map in the upper layout, a 3D "
            f"input (batch, L (L + 1) / 2, channels). Received: input_shape={input_shape}"
        )
    n = input_shape[1]
    side = None if n is None else upper.side_of(int(n), f"input of layer {layer.name!r}")
    return (input_shape[0], side, side, input_shape[2])


def _upper_output_shape(full_shape):
    batch, side, _, channels = full_shape
    return (batch, None if side is None else upper.upper_length(side), channels)


class _PackedInitializer:
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
        packed = kernels.pack_kernel(full, self.generating)
        if tuple(packed.shape) != tuple(shape):
            raise ValueError(
                f"Internal error: packed initial kernel has shape "
                f"{tuple(packed.shape)}, expected {tuple(shape)}."
            )
        return packed


class _SymmetricConv2D(keras.layers.Layer):
    """Shared machinery of the symmetric convolutions (not public)."""

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
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _square(kernel_size, "kernel_size")
        self.strides = _square(strides, "strides")
        self.dilation_rate = _square(dilation_rate, "dilation_rate")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "`strides > 1` is not supported together with "
                f"`dilation_rate > 1` (as in keras.layers.Conv2D). Received: "
                f"strides={strides!r} and dilation_rate={dilation_rate!r}"
            )
        self.padding = _normalize_padding(padding)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _get_initializer(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

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
        full_shape = kernels.full_kernel_shape(self.kernel_size, in_channels, self.filters)
        self.packed_kernel = self.add_weight(
            name="packed_kernel",
            shape=kernels.packed_kernel_shape(
                self.kernel_size, in_channels, self.filters, self._generating
            ),
            initializer=_PackedInitializer(self.kernel_initializer, full_shape, self._generating),
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
        self._expand = kernels.make_kernel_expander(self.kernel_size, self._generating)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: in_channels})

    @property
    def kernel(self):
        """The full expanded kernel ``(C, C, in_channels, filters)``."""
        if not self.built:
            raise ValueError(f"Layer {self.name!r} has no kernel before it is built.")
        # A tensor, never the variable itself: tf.custom_gradient rejects
        # variable arguments on eager calls under a GradientTape.
        return self._expand(tf.convert_to_tensor(self.packed_kernel))

    def call(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        # tf.nn.convolution, not tf.nn.conv2d: the CPU kernels of conv2d have
        # no dilated backward pass; convolution lowers dilation itself.
        outputs = tf.nn.convolution(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )
        return self._bias_and_activation(outputs)

    def _bias_and_activation(self, outputs):
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, length = input_shape[0], input_shape[1]
        if length is None:
            length = input_shape[2]
        out = _conv_output_length(
            length, self.kernel_size, self.strides, self.dilation_rate, self.padding
        )
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


_CONV_ARGS_DOC = """
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
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Raises:
        ValueError: for a non-square ``kernel_size``, unequal ``strides`` or
            ``dilation_rate``, ``padding`` other than same/valid,
            ``filters < 1``, and at build time an input that is not 4D, not
            square, or (generating layer) has an odd channel count.
"""


@keras.saving.register_keras_serializable(package="keras_symconv")
class SymmetryGenerating2D(_SymmetricConv2D):
    __doc__ = (
        """Convolution of a self-Cartesian product with a symmetric output.

    The kernel ``W (C, C, 2n, F)`` satisfies ``W[a, b] == W[b, a]`` and
    ``W[a, b, k] == W[a, b, k + n]``, so for an input ``y`` with
    ``y[i, j] = concat(x[i], x[j])`` the output is symmetric (Theorem 1).
    The only trainable kernel variable is ``packed_kernel`` of shape
    ``(C(C+1)/2, n, F)``; its gradient is the paper's eq. 3.
"""
        + _CONV_ARGS_DOC
        + """
        layout: ``"full"`` (default) returns the full map; ``"upper"`` its
            upper triangle in the layout of :mod:`keras_symconv.upper`
            (computed in full, then the entries on and above the diagonal
            kept), for a network whose maps are in that layout.

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
    )

    _generating = True

    def __init__(self, *args, layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = _check_layout(layout)

    def call(self, inputs):
        outputs = super().call(inputs)
        return upper.to_upper(outputs) if self.layout == "upper" else outputs

    def compute_output_shape(self, input_shape):
        full = super().compute_output_shape(input_shape)
        return _upper_output_shape(full) if self.layout == "upper" else full

    def get_config(self):
        config = super().get_config()
        config["layout"] = self.layout
        return config


@keras.saving.register_keras_serializable(package="keras_symconv")
class SymmetryPreserving2D(_SymmetricConv2D):
    __doc__ = (
        """Convolution that maps a symmetric feature map to a symmetric one.

    The kernel ``Q (C, C, m, F)`` satisfies ``Q[a, b] == Q[b, a]``. The only
    trainable kernel variable is ``packed_kernel`` of shape
    ``(C(C+1)/2, m, F)``; its gradient is the paper's eq. 5.
"""
        + _CONV_ARGS_DOC
        + """        compute: how the output is computed; the result is the same.
            ``"full"``: one ``conv2d`` over the whole map.
            ``"triangular"``: only the entries on and above the diagonal, in
            row strips, mirrored with one gather (bitwise symmetric output);
            the backward pass is halved the same way (see
            :mod:`keras_symconv.triangular`). Needs ``strides=1`` and an
            input that is symmetric, as this layer's contract says (a
            non-symmetric input gives the triangle's mirror, not the full
            convolution; the input gradient is the symmetric part of the
            full one, which is all a symmetric network upstream receives).
            Maps too small for the strips are computed in full.
            ``"auto"`` (default): triangular where it was measured faster
            on this library's benchmark grid (``strides == 1``, output side
            at least :attr:`TRIANGULAR_MIN_LENGTH`, known when the graph is
            built, and at least :attr:`TRIANGULAR_MIN_WORK` multiply-adds
            per map), full otherwise, also when the side is unknown (``None``)
            while the graph is built. ``"triangular"`` with an unknown side
            chooses at run time (strips of :attr:`DYNAMIC_PLAN`, full below
            their minimum side). With ``layout="upper"``: ``"auto"`` and
            ``"triangular"`` compute the upper triangle in blocks for every
            side; ``"full"`` expands the map, convolves it whole and keeps
            the upper triangle (a reference, slower).
        layout: ``"full"`` (default): input and output are full maps
            ``(batch, L, L, channels)``. ``"upper"``: both are in the
            upper-triangle layout of :mod:`keras_symconv.upper`,
            ``(batch, L (L + 1) / 2, channels)``, half the memory; needs
            ``strides=1``. The same weights compute the same function.

    Input shape:
        ``(batch, L, L, m)``, symmetric in its two spatial axes (or
        ``(batch, L (L + 1) / 2, m)`` with ``layout="upper"``).

    Output shape:
        ``(batch, L', L', filters)``, symmetric in its two spatial axes (or
        ``(batch, L' (L' + 1) / 2, filters)``).
"""
    )

    _generating = False

    #: Output side from which ``compute="auto"`` goes triangular.
    TRIANGULAR_MIN_LENGTH = 128
    #: Least work of the full convolution of one map, ``L'^2 C^2 m F``
    #: multiply-adds, at which ``compute="auto"`` goes triangular: below it
    #: the strips' fixed costs eat the saving (at L' = 128, C = 3, 40 -> 20
    #: channels, 1.2e8, the triangular forward+backward took 1.2x the full
    #: one on an AMD EPYC; at C = 5, 3.3e8, 0.75x).
    TRIANGULAR_MIN_WORK = 2e8
    #: Target strip height of the triangular compute (rows).
    STRIP_HEIGHT = 64
    #: Most strips used.
    MAX_STRIPS = 8
    #: Pieces the diagonal block of each strip is cut into.
    DIAGONAL_SPLITS = 4
    #: ``(strips, splits)`` of ``compute="triangular"`` when the side is
    #: unknown while the graph is built: a graph of few blocks, since both
    #: branches of the run-time choice are built, with their gradients.
    DYNAMIC_PLAN = (4, 1)
    #: ``(strips, splits)`` with ``layout="upper"`` when the side is unknown
    #: while the graph is built (no full branch: one graph, any side).
    UPPER_DYNAMIC_PLAN = (4, 2)
    #: Most strips with ``layout="upper"``: more, shorter strips keep each
    #: block's input window small (at L = 1,500, RNA SCNN inference peaked
    #: at 543-564 MiB with 16 strips against 575-603 MiB with 8, no slower).
    UPPER_MAX_STRIPS = 16

    def __init__(self, *args, compute="auto", layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = _check_layout(layout)
        if layout == "upper":
            if self.strides != 1:
                raise ValueError(
                    "layout='upper' needs strides=1 (a strided map would change its "
                    f"layout). Received: strides={self.strides}"
                )
            self.input_spec = keras.layers.InputSpec(ndim=3)
        if compute not in ("full", "triangular", "auto"):
            raise ValueError(
                f"`compute` must be 'full', 'triangular' or 'auto'. Received: compute={compute!r}"
            )
        if compute == "triangular" and self.strides != 1:
            raise ValueError(
                "compute='triangular' needs strides=1 (the strided output is "
                f"already {self.strides}x{self.strides} smaller). Received: "
                f"strides={self.strides}"
            )
        self.compute = compute
        self._triangular = {}

    def build(self, input_shape):
        if self.layout == "full":
            return super().build(input_shape)
        super().build(_upper_input_shape(self, input_shape))
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: int(input_shape[-1])})

    def compute_output_shape(self, input_shape):
        if self.layout == "full":
            return super().compute_output_shape(input_shape)
        full = super().compute_output_shape(_upper_input_shape(self, input_shape))
        return _upper_output_shape(full)

    def _fits(self, out_len, strips, splits):
        return out_len >= triangular.min_length(
            self.kernel_size, self.dilation_rate, strips, splits
        )

    def _plan(self, out_len, channels=None):
        """``(strips, splits)`` for a known output side, or ``None`` for full.

        ``channels``: the input's, for ``compute="auto"``'s work threshold
        (not checked when ``None``).
        """
        if self.compute == "auto":
            if out_len < self.TRIANGULAR_MIN_LENGTH:
                return None
            work = None if channels is None else out_len**2 * self.kernel_size**2 * channels
            if work is not None and work * self.filters < self.TRIANGULAR_MIN_WORK:
                return None
        strips = min(self.MAX_STRIPS, max(2, round(out_len / self.STRIP_HEIGHT)))
        splits = self.DIAGONAL_SPLITS
        while splits > 1 and not self._fits(out_len, strips, splits):
            splits -= 1
        while strips > 2 and not self._fits(out_len, strips, splits):
            strips -= 1
        return (strips, splits) if self._fits(out_len, strips, splits) else None

    def _triangular_fn(self, strips, splits):
        key = (strips, splits)
        if key not in self._triangular:
            self._triangular[key] = triangular.make_triangular_conv(
                self.kernel_size,
                self.dilation_rate,
                self.padding,
                strips,
                self.use_bias,
                splits,
            )
        return self._triangular[key]

    def _upper_fn(self, strips, splits):
        key = ("upper", strips, splits)
        if key not in self._triangular:
            self._triangular[key] = upper.make_upper_conv(
                self.kernel_size, self.dilation_rate, self.padding, strips, splits, self.use_bias
            )
        return self._triangular[key]

    def _call_upper(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        bias = tf.cast(self.bias, inputs.dtype) if self.use_bias else None
        if self.compute == "full":
            outputs = tf.nn.convolution(
                upper.from_upper(inputs),
                kernel,
                padding=self.padding.upper(),
                dilations=self.dilation_rate,
            )
            if bias is not None:
                outputs = tf.nn.bias_add(outputs, bias)
            outputs = upper.to_upper(outputs)
        else:
            n_out = self.compute_output_shape(inputs.shape)[1]
            if n_out is None:
                plan = tuple(self.UPPER_DYNAMIC_PLAN)
            else:
                plan = upper.upper_plan(
                    upper.side_of(n_out),
                    self.kernel_size,
                    self.dilation_rate,
                    self.STRIP_HEIGHT,
                    self.UPPER_MAX_STRIPS,
                    self.DIAGONAL_SPLITS,
                )
            args = (inputs, kernel) if bias is None else (inputs, kernel, bias)
            outputs = self._upper_fn(*plan)(*args)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def call(self, inputs):
        if self.layout == "upper":
            return self._call_upper(inputs)
        if self.compute == "full" or self.strides != 1:
            return super().call(inputs)
        out_len = self.compute_output_shape(inputs.shape)[1]
        plan = None if out_len is None else self._plan(out_len, inputs.shape[-1])
        if self.compute == "auto" and plan is None:
            # Computed in full: the very graph of compute="full". With the
            # side unknown while the graph is built, a run-time choice would
            # build (and, under a gradient, carry) both branches: with it,
            # the main job's SCNN epochs (crop 80, full branch at run time)
            # took 33-39 s against about 31 s without.
            return super().call(inputs)
        kernel = tf.cast(self.kernel, inputs.dtype)
        args = (inputs, kernel)
        if self.use_bias:
            args += (tf.cast(self.bias, inputs.dtype),)

        def full():
            outputs = tf.nn.convolution(
                inputs, kernel, padding=self.padding.upper(), dilations=self.dilation_rate
            )
            if self.use_bias:
                outputs = tf.nn.bias_add(outputs, args[2])
            return outputs

        if out_len is not None:
            outputs = self._triangular_fn(*plan)(*args) if plan else full()
        else:
            plan = tuple(self.DYNAMIC_PLAN)
            reach = (self.kernel_size - 1) * self.dilation_rate + 1
            threshold = triangular.min_length(self.kernel_size, self.dilation_rate, *plan)
            length = tf.shape(inputs)[1]
            dynamic_out = length if self.padding == "same" else length - reach + 1
            outputs = tf.cond(
                dynamic_out >= threshold,
                lambda: self._triangular_fn(*plan)(*args),
                full,
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["compute"] = self.compute
        config["layout"] = self.layout
        return config


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
        return 0.5 * (inputs + tf.transpose(inputs, [0, 2, 1, 3]))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_symconv")
class FusedSymmetryGenerating2D(_SymmetricConv2D):
    """``SelfCartesian`` then ``SymmetryGenerating2D``, without the pair tensor.

    Takes the sequence ``(batch, L, n)`` and returns exactly what
    ``SymmetryGenerating2D`` returns on its self-Cartesian product
    ``(batch, L, L, 2n)`` with the same packed kernel, borders included, for
    every kernel size, padding, stride and dilation; the ``(L, L, 2n)``
    tensor is never built. With ``S`` the packed kernel and ``m`` the 0/1
    in-bounds mask of the (implicitly) padded positions::

        Z[s, t] = T[s, t] + T[t, s],   T[s, t] = sum_b V[s, b] m(t, b),
        V[s, b] = sum_a x_pad(s * stride + a * dilation) . S[a, b]

    ``V`` is one 1D convolution of the sequence (cost ~ L C^2 n F) and ``T``
    a contraction over the C kernel columns (~ L^2 C F), instead of a 2D
    convolution over ``(L, L, 2n)`` (~ L^2 C^2 2n F). The output is bitwise
    symmetric. Its ``packed_kernel`` has the shape of the unfused layer's,
    so weights move between the two with ``get_weights``/``set_weights``.

    Arguments are those of :class:`SymmetryGenerating2D`, and ``layout``:
    ``"full"`` (default) returns the full map, ``"upper"`` only its upper
    triangle in the layout of :mod:`keras_symconv.upper` (for kernel size 1,
    ``u[r] + u[c]`` for the stored pairs; no full map is built).

    Input shape:
        ``(batch, L, n)``.

    Output shape:
        ``(batch, L', L', filters)``, or ``(batch, L' (L' + 1) / 2, filters)``
        with ``layout="upper"``.
    """

    _generating = True

    def __init__(self, *args, layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = _check_layout(layout)
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
        self._expand_half = kernels.make_kernel_expander(self.kernel_size, generating=False)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: n})

    def call(self, inputs):
        c, stride, dilation = self.kernel_size, self.strides, self.dilation_rate
        half = tf.cast(self._expand_half(tf.convert_to_tensor(self.packed_kernel)), inputs.dtype)
        n, filters = tf.shape(half)[2], self.filters
        # (a, b, k, f) -> (a, k, b, f) -> 1D kernel (a, k, b * F)
        kernel_1d = tf.reshape(tf.transpose(half, [0, 2, 1, 3]), [c, n, c * filters])
        v = tf.nn.convolution(
            inputs, kernel_1d, strides=stride, padding=self.padding.upper(), dilations=dilation
        )
        if c == 1:
            # Every position is in bounds: Z[s, t] = u[s] + u[t] (+ bias), a
            # broadcast (measured faster than the general contraction below).
            # Half the bias joins each term, on the sequence, rather than the
            # bias being added to the map: a pass over the map fewer forward
            # and backward, and still w[s] + w[t] == w[t] + w[s] bitwise.
            if self.use_bias:
                v = tf.nn.bias_add(v, 0.5 * tf.cast(self.bias, v.dtype))
            if self.layout == "upper":
                outputs = upper.pair_sum(v[:, :, None, :])
            else:
                outputs = v[:, :, None, :] + v[:, None, :, :]
            if self.activation is not None:
                outputs = self.activation(outputs)
            return outputs
        out_len = tf.shape(v)[1]
        v = tf.reshape(v, [tf.shape(v)[0], out_len, c, filters])
        # In-bounds mask m(t, b) of the padded positions, as TensorFlow pads.
        length = tf.shape(inputs)[1]
        effective = (c - 1) * dilation + 1
        if self.padding == "same":
            total = tf.maximum((out_len - 1) * stride + effective - length, 0)
            pad_before = total // 2
        else:
            pad_before = 0

        def in_bounds(t):
            pos = t[:, None] * stride + tf.range(c)[None, :] * dilation - pad_before
            return tf.cast((pos >= 0) & (pos < length), v.dtype)

        if self.layout == "upper":
            # T[s, t] depends on t only through its mask row, which is all
            # ones except for the first and last `reach` outputs: T is kept
            # as a table of P = 1 + 2 reach columns (all ones, then those
            # outputs' rows) and pattern[t] names t's column, so the
            # (L, L) map T is never built.
            reach = -(-((c - 1) * dilation) // stride) if self.padding == "same" else 0
            ends = tf.range(reach)
            masks = tf.concat(
                [
                    tf.ones([1, c], v.dtype),
                    in_bounds(tf.minimum(ends, out_len - 1)),
                    in_bounds(tf.maximum(out_len - reach + ends, 0)),
                ],
                axis=0,
            )
            table = tf.einsum("bscf,pc->bspf", v, masks)
            if self.use_bias:
                # Half the bias on each term, as for kernel size 1.
                table = table + 0.5 * tf.cast(self.bias, table.dtype)
            t = tf.range(out_len)
            pattern = tf.where(
                t < reach, 1 + t, tf.where(t >= out_len - reach, 1 + t - (out_len - 2 * reach), 0)
            )
            outputs = upper.pair_sum(table, pattern)
            return self.activation(outputs) if self.activation is not None else outputs
        t = tf.einsum("bscf,tc->bstf", v, in_bounds(tf.range(out_len)))
        return self._bias_and_activation(t + tf.transpose(t, [0, 2, 1, 3]))

    def compute_output_shape(self, input_shape):
        batch, length, _ = input_shape
        full = super().compute_output_shape((batch, length, length, None))
        return _upper_output_shape(full) if self.layout == "upper" else full

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


@keras.saving.register_keras_serializable(package="keras_symconv")
class ToUpper(keras.layers.Layer):
    """A full symmetric map ``(batch, L, L, c)`` -> its upper-triangle layout.

    ``(batch, L (L + 1) / 2, c)``: the entries on and above the diagonal, in
    the order of :mod:`keras_symconv.upper` (entries below the diagonal are
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
        return _upper_output_shape((batch, side, side, channels))


@keras.saving.register_keras_serializable(package="keras_symconv")
class FromUpper(keras.layers.Layer):
    """A map in the upper-triangle layout -> the full map ``(batch, L, L, c)``.

    Every entry below the diagonal is read from its mirror image, so the
    output is bitwise symmetric.
    """

    def build(self, input_shape):
        _upper_input_shape(self, input_shape)

    def call(self, inputs):
        return upper.from_upper(inputs)

    def compute_output_shape(self, input_shape):
        return _upper_input_shape(self, input_shape)


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
    once held more than the block's concatenation needs (contact SCNN, one
    300-residue chain: allocator peak 85-90 MiB with the convolutions side
    by side, 72-76 MiB chained; ``benchmarks/RESULTS.md``, speed part 3).

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
        with tf.control_dependencies([previous]):
            return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="keras_symconv")
class UpperBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization of a map in the upper-triangle layout.

    Normalizes ``(batch, L (L + 1) / 2, channels)`` per channel with the
    statistics of the full symmetric map: an entry off the diagonal counts
    twice (it stands for ``(r, c)`` and ``(c, r)``), a diagonal entry once.
    So with the same weights it computes what ``keras.layers.BatchNormalization``
    computes on the full map, in training (batch statistics, moving-average
    updates) and in inference. Arguments are ``BatchNormalization``'s, with
    ``axis=-1`` and no ``renorm``; ``synchronized=True`` sums the statistics
    over the replicas of a ``tf.distribute`` strategy.
    """

    def __init__(self, **kwargs):
        axis = kwargs.get("axis", -1)
        if axis not in (-1, 2):
            raise ValueError(
                f"UpperBatchNormalization normalizes the channel axis (-1). Received: axis={axis}"
            )
        if kwargs.get("renorm"):
            raise ValueError("UpperBatchNormalization does not support renorm=True.")
        super().__init__(**kwargs)
        self.supports_masking = False

    def build(self, input_shape):
        _upper_input_shape(self, input_shape)
        super().build(input_shape)

    def _full_map_moments(self, x):
        """Mean and (biased) variance per channel over the full maps of ``x``."""
        side = upper.map_side(x)
        diag = tf.gather(x, upper.diagonal_index(side), axis=1)
        count = tf.cast(tf.shape(x)[0] * side * side, x.dtype)

        def weighted_sum(values, diagonal):
            # Off-diagonal entries twice, diagonal ones once.
            return 2.0 * tf.reduce_sum(values, axis=[0, 1]) - tf.reduce_sum(diagonal, axis=[0, 1])

        context = tf.distribute.get_replica_context()
        if self.synchronized and context is not None and context.num_replicas_in_sync > 1:
            sums = tf.concat(
                [
                    weighted_sum(x, diag),
                    weighted_sum(tf.square(x), tf.square(diag)),
                    count[None],
                ],
                axis=0,
            )
            sums = context.all_reduce(tf.distribute.ReduceOp.SUM, sums)
            channels = tf.shape(x)[-1]
            mean = sums[:channels] / sums[-1]
            variance = tf.maximum(sums[channels:-1] / sums[-1] - tf.square(mean), 0.0)
            return mean, variance
        mean = weighted_sum(x, diag) / count
        centre = tf.stop_gradient(mean)
        # squared_difference, not square(x - centre): its gradient reads x,
        # which the step holds anyway, where square's would hold the
        # difference, one more copy of the map until the backward pass.
        variance = (
            weighted_sum(tf.math.squared_difference(x, centre), tf.square(diag - centre)) / count
        )
        return mean, variance

    def call(self, inputs, training=None):
        compute_dtype = "float32" if inputs.dtype in (tf.float16, tf.bfloat16) else inputs.dtype
        x = tf.cast(inputs, compute_dtype)
        if training and self.trainable:
            mean, variance = self._full_map_moments(x)
            momentum = tf.cast(self.momentum, x.dtype)
            self.moving_mean.assign(
                tf.cast(self.moving_mean, x.dtype) * momentum + mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                tf.cast(self.moving_variance, x.dtype) * momentum + variance * (1.0 - momentum)
            )
        else:
            mean = tf.cast(self.moving_mean, x.dtype)
            variance = tf.cast(self.moving_variance, x.dtype)
        outputs = tf.nn.batch_normalization(
            x,
            mean,
            variance,
            tf.cast(self.beta, x.dtype) if self.center else None,
            tf.cast(self.gamma, x.dtype) if self.scale else None,
            self.epsilon,
        )
        return tf.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_symconv")
class ItemScorer(keras.layers.Layer):
    """Per-item output weights: ``score[b, k] = W[items[b, k]] . x[b] + bias[items[b, k]]``.

    Called on ``[x, items]`` it looks up only the rows of the items to score
    (training on targets and sampled negatives); called on ``x`` alone it
    scores every item with one matrix product, ``x @ W^T + bias`` (ranking
    at evaluation), without building anything per item.

    Args:
        num_items: rows of the item table (item ids ``0 .. num_items - 1``).
        weight_initializer: default normal with stddev ``1 / dim`` (CosRec).
        regularizer: applied to both the weights and the biases.

    Input shape:
        ``x (batch, dim)`` and optionally ``items (batch, K)`` int.

    Output shape:
        ``(batch, K)`` or ``(batch, num_items)``.
    """

    def __init__(self, num_items, weight_initializer=None, regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)):
            raise ValueError(f"Argument `num_items` must be an integer. Received: {num_items!r}")
        if num_items < 1:
            raise ValueError(f"Argument `num_items` must be positive. Received: {num_items}")
        self.num_items = int(num_items)
        self.weight_initializer = (
            keras.initializers.get(weight_initializer) if weight_initializer else None
        )
        self.regularizer = keras.regularizers.get(regularizer)

    def build(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        dim = x_shape[-1]
        if dim is None:
            raise ValueError(f"ItemScorer needs a known feature size. Received: {x_shape}")
        init = self.weight_initializer or keras.initializers.RandomNormal(stddev=1.0 / dim)
        self.item_weights = self.add_weight(
            shape=(self.num_items, int(dim)),
            initializer=init,
            regularizer=self.regularizer,
            name="item_weights",
        )
        self.item_bias = self.add_weight(
            shape=(self.num_items,),
            initializer="zeros",
            regularizer=self.regularizer,
            name="item_bias",
        )

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, items = inputs
            items = tf.cast(items, "int32")
            w = tf.gather(self.item_weights, items)
            return tf.einsum("bkd,bd->bk", w, x) + tf.gather(self.item_bias, items)
        return tf.matmul(inputs, self.item_weights, transpose_b=True) + self.item_bias

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape[0], (list, tuple)):
            return (input_shape[0][0], input_shape[1][1])
        return (input_shape[0], self.num_items)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            weight_initializer=(
                keras.initializers.serialize(self.weight_initializer)
                if self.weight_initializer
                else None
            ),
            regularizer=keras.regularizers.serialize(self.regularizer),
        )
        return config
