"""The symmetric convolutions as the layers call them: one function per strategy.

Every strategy is ``f(x, kernel, bias, spec, rules)``: ``spec`` a
:class:`Spec` (the convolution's arguments), ``rules`` the planner's
:class:`~keras_symconv.ops.plan.Rules`, ``bias`` ``(F,)`` or ``None``. It
returns the convolution plus the bias (the activation is the layer's).
:func:`preserving_strategy` picks the strategy of a symmetry-preserving
convolution from its arguments; the blocks are planned at each call, for
the output side known then.
"""

from __future__ import annotations

import tensorflow as tf

from keras_symconv.ops import triangular, upper
from keras_symconv.ops.geometry import Spec
from keras_symconv.ops.plan import plan

__all__ = [
    "Spec",
    "full_conv",
    "triangular_conv",
    "upper_conv",
    "full_conv_upper",
    "preserving_strategy",
]


def full_conv(x, kernel, bias, spec, rules=None):
    """One ``tf.nn.convolution`` over the whole map (plus the bias)."""
    # tf.nn.convolution, not tf.nn.conv2d: the CPU kernels of conv2d have no
    # dilated backward pass; convolution lowers dilation itself.
    y = tf.nn.convolution(
        x, kernel, strides=spec.strides, padding=spec.padding.upper(), dilations=spec.dilation
    )
    return y if bias is None else tf.nn.bias_add(y, bias)


def triangular_conv(x, kernel, bias, spec, rules):
    """The upper triangle in blocks, mirrored (:mod:`keras_symconv.ops.triangular`).

    Full ``conv2d`` where :func:`~keras_symconv.ops.plan.plan` says so; a
    run-time choice between the two when the side is unknown while the
    graph is built and ``spec.compute == "triangular"``.
    """
    side = spec.output_side(x.shape[1])
    work = None
    if side is not None and x.shape[-1] is not None:
        work = side**2 * spec.kernel_size**2 * x.shape[-1] * kernel.shape[-1]
    blocks = plan(side, spec.kernel_size, spec.dilation, "full", spec.compute, work, rules)
    if blocks is None:
        # The very graph of compute="full": with the side unknown while the
        # graph is built, a run-time choice would build (and, under a
        # gradient, carry) both branches.
        return full_conv(x, kernel, bias, spec)
    if side is None:
        return triangular.triangular_or_full(
            x, kernel, bias, spec.kernel_size, spec.dilation, spec.padding, blocks
        )
    f = triangular.make_triangular_conv(
        spec.kernel_size, spec.dilation, spec.padding, blocks[0], bias is not None, blocks[1]
    )
    return f(x, kernel) if bias is None else f(x, kernel, bias)


def upper_conv(x, kernel, bias, spec, rules):
    """A map in the upper layout to one in the upper layout, in blocks
    (:func:`keras_symconv.ops.upper.make_upper_conv`)."""
    n = x.shape[1]
    side = spec.output_side(None if n is None else upper.side_of(int(n)))
    strips, splits = plan(side, spec.kernel_size, spec.dilation, "upper", spec.compute, None, rules)
    f = upper.make_upper_conv(
        spec.kernel_size, spec.dilation, spec.padding, strips, splits, bias is not None
    )
    return f(x, kernel) if bias is None else f(x, kernel, bias)


def full_conv_upper(x, kernel, bias, spec, rules=None):
    """The upper layout computed through the full map (a reference, slower)."""
    return upper.full_conv_upper(x, kernel, bias, spec.dilation, spec.padding)


def preserving_strategy(spec):
    """The strategy of a symmetry-preserving convolution with these arguments."""
    if spec.layout == "upper":
        return full_conv_upper if spec.compute == "full" else upper_conv
    if spec.compute == "full" or spec.strides != 1:
        return full_conv
    return triangular_conv
