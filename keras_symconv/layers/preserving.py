"""The symmetry-preserving convolution: a symmetric map to a symmetric map."""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv import _validation as check
from keras_symconv.layers._base import SymmetricConv2D, upper_input_shape, upper_output_shape
from keras_symconv.ops import portable
from keras_symconv.ops.plan import Rules, plan

if _backend.TENSORFLOW:
    from keras_symconv.ops.convolution import preserving_strategy


@keras.saving.register_keras_serializable(package="keras_symconv")
class SymmetryPreserving2D(SymmetricConv2D):
    """Convolution that maps a symmetric feature map to a symmetric one.

    The kernel ``Q (C, C, m, F)`` satisfies ``Q[a, b] == Q[b, a]``. The only
    trainable kernel variable is ``packed_kernel`` of shape
    ``(C(C+1)/2, m, F)``; its gradient is the paper's eq. 5.

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
            two times).
        bias_regularizer, activity_regularizer: as in ``Conv2D``.
        kernel_constraint: applied to the packed kernel.
        bias_constraint: as in ``Conv2D``.
        compute: how the output is computed; the result is the same.
            ``"full"``: one ``conv2d`` over the whole map.
            ``"triangular"``: only the entries on and above the diagonal, in
            row strips, mirrored with one gather (bitwise symmetric output);
            the backward pass is halved the same way (see
            :mod:`keras_symconv.ops.triangular`). Needs ``strides=1`` and an
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
            the upper triangle (a reference, slower). The plan is
            :func:`keras_symconv.ops.plan.plan` with this class's constants.
            On JAX the blocks are
            :func:`keras_symconv.ops.portable.triangular_conv` (``keras.ops``
            and autodiff; ``layout="upper"`` maps are expanded to the full
            map for them), on PyTorch the functions of
            :mod:`keras_symconv.ops.torch_blocks` (gradient written out; the
            upper layout computed in place), both planned with
            :data:`keras_symconv.ops.portable.RULES` rather than this class's
            constants.
        layout: ``"full"`` (default): input and output are full maps
            ``(batch, L, L, channels)``. ``"upper"``: both are in the
            upper-triangle layout of :mod:`keras_symconv.ops.upper`,
            ``(batch, L (L + 1) / 2, channels)``, half the memory; needs
            ``strides=1``. The same weights compute the same function (on
            JAX through the full map, so without the memory saving).
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Raises:
        ValueError: for a non-square ``kernel_size``, unequal ``strides`` or
            ``dilation_rate``, ``padding`` other than same/valid,
            ``filters < 1``, ``compute="triangular"`` or ``layout="upper"``
            with ``strides > 1``, and at build time an input that is not 4D
            (3D in the upper layout) or not square.

    Input shape:
        ``(batch, L, L, m)``, symmetric in its two spatial axes (or
        ``(batch, L (L + 1) / 2, m)`` with ``layout="upper"``).

    Output shape:
        ``(batch, L', L', filters)``, symmetric in its two spatial axes (or
        ``(batch, L' (L' + 1) / 2, filters)``).

    Example:

    >>> import keras, keras_symconv as ks
    >>> x = keras.Input((None, None, 8))
    >>> ks.SymmetryPreserving2D(4, 5, activation="relu")(x).shape
    (None, None, None, 4)
    """

    _generating = False

    #: Output side from which ``compute="auto"`` goes triangular.
    TRIANGULAR_MIN_LENGTH = Rules.min_side
    #: Least work of the full convolution of one map, ``L'^2 C^2 m F``
    #: multiply-adds, at which ``compute="auto"`` goes triangular (below it
    #: the strips' fixed costs eat the saving).
    TRIANGULAR_MIN_WORK = Rules.min_work
    #: Target strip height of the triangular compute (rows).
    STRIP_HEIGHT = Rules.strip_height
    #: Most strips used.
    MAX_STRIPS = Rules.max_strips
    #: Pieces the diagonal block of each strip is cut into.
    DIAGONAL_SPLITS = Rules.max_splits
    #: ``(strips, splits)`` of ``compute="triangular"`` when the side is
    #: unknown while the graph is built.
    DYNAMIC_PLAN = Rules.dynamic
    #: ``(strips, splits)`` with ``layout="upper"`` when the side is unknown
    #: while the graph is built.
    UPPER_DYNAMIC_PLAN = Rules.upper_dynamic
    #: Most strips with ``layout="upper"``.
    UPPER_MAX_STRIPS = Rules.upper_max_strips

    def __init__(self, *args, compute="auto", layout="full", **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = check.choice(layout, "layout", ("full", "upper"))
        if layout == "upper":
            if self.strides != 1:
                raise ValueError(
                    "layout='upper' needs strides=1 (a strided map would change its "
                    f"layout). Received: strides={self.strides}"
                )
            self.input_spec = keras.layers.InputSpec(ndim=3)
        self.compute = check.choice(compute, "compute", ("full", "triangular", "auto"))
        if compute == "triangular" and self.strides != 1:
            raise ValueError(
                "compute='triangular' needs strides=1 (the strided output is "
                f"already {self.strides}x{self.strides} smaller). Received: "
                f"strides={self.strides}"
            )

    def _rules(self):
        """The planner's rules from this layer's constants (read at each call)."""
        return Rules(
            min_side=self.TRIANGULAR_MIN_LENGTH,
            min_work=self.TRIANGULAR_MIN_WORK,
            strip_height=self.STRIP_HEIGHT,
            max_strips=self.MAX_STRIPS,
            max_splits=self.DIAGONAL_SPLITS,
            dynamic=tuple(self.DYNAMIC_PLAN),
            upper_max_strips=self.UPPER_MAX_STRIPS,
            upper_dynamic=tuple(self.UPPER_DYNAMIC_PLAN),
        )

    def _plan(self, out_len, channels=None):
        """``(strips, splits)`` for a known output side, or ``None`` for full.

        ``channels``: the input's, for ``compute="auto"``'s work threshold
        (not checked when ``None``).
        """
        work = None
        if channels is not None:
            work = out_len**2 * self.kernel_size**2 * channels * self.filters
        return plan(
            out_len,
            self.kernel_size,
            self.dilation_rate,
            self.layout,
            self.compute,
            work,
            self._rules(),
        )

    def build(self, input_shape):
        spec = self._spec(layout=self.layout, compute=self.compute)
        # Off TensorFlow: keras.ops, in full (the same function, same weights).
        self._strategy = (
            preserving_strategy(spec) if _backend.TENSORFLOW else portable.preserving_conv
        )
        if self.layout == "full":
            return super().build(input_shape)
        super().build(upper_input_shape(self, input_shape))
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: int(input_shape[-1])})

    def convolution_op(self, inputs, kernel, bias):
        spec = self._spec(layout=self.layout, compute=self.compute)
        return self._strategy(inputs, kernel, bias, spec, self._rules())

    def compute_output_shape(self, input_shape):
        if self.layout == "full":
            return super().compute_output_shape(input_shape)
        full = super().compute_output_shape(upper_input_shape(self, input_shape))
        return upper_output_shape(full)

    def get_config(self):
        config = super().get_config()
        config["compute"] = self.compute
        config["layout"] = self.layout
        return config
