"""The fused symmetry-generating convolution: a sequence to a symmetric map.

What :class:`~keras_symconv.SymmetryGenerating2D` computes on a
self-Cartesian product ``y[i, j] = concat(x[i], x[j])``, without building
``y``. With ``S`` the half kernel ``(C, C, n, F)`` (the packed kernel
expanded as a preserving one) and ``m`` the 0/1 in-bounds mask of the
(implicitly) padded positions::

    Z[s, t] = T[s, t] + T[t, s],   T[s, t] = sum_b V[s, b] m(t, b),
    V[s, b] = sum_a x_pad(s * stride + a * dilation) . S[a, b]

``V`` is one 1D convolution of the sequence (cost ~ L C^2 n F) and ``T`` a
contraction over the ``C`` kernel columns (~ L^2 C F), instead of a 2D
convolution over ``(L, L, 2n)`` (~ L^2 C^2 2n F). The output is bitwise
symmetric.
"""

from __future__ import annotations

import tensorflow as tf

from keras_symconv.ops.geometry import effective_size
from keras_symconv.ops.upper import pair_sum

__all__ = ["fused_generating_conv"]


def fused_generating_conv(x, half, bias, strides, dilation, padding, layout="full"):
    """``Z`` above (plus ``bias``) for a sequence ``x (B, L, n)``.

    Args:
        x: ``(B, L, n)``.
        half: ``(C, C, n, F)`` with ``half[a, b] == half[b, a]``.
        bias: ``(F,)`` or ``None``.
        strides, dilation, padding: as in ``conv2d`` (``padding`` lower case).
        layout: ``"full"``: ``(B, L', L', F)``; ``"upper"``: the upper
            triangle ``(B, L' (L' + 1) / 2, F)`` (:mod:`keras_symconv.ops.upper`),
            no full map built.
    """
    c = half.shape[0]
    n, filters = tf.shape(half)[2], half.shape[-1]
    # (a, b, k, f) -> (a, k, b, f) -> 1D kernel (a, k, b * F)
    kernel_1d = tf.reshape(tf.transpose(half, [0, 2, 1, 3]), [c, n, c * filters])
    v = tf.nn.convolution(
        x, kernel_1d, strides=strides, padding=padding.upper(), dilations=dilation
    )
    if c == 1:
        # Every position is in bounds: Z[s, t] = u[s] + u[t] (+ bias), a
        # broadcast, faster than the general contraction below. Half the
        # bias joins each term, on the sequence, rather than the bias being
        # added to the map: a pass over the map fewer forward and backward,
        # and still w[s] + w[t] == w[t] + w[s] bitwise.
        if bias is not None:
            v = tf.nn.bias_add(v, 0.5 * bias)
        if layout == "upper":
            return pair_sum(v[:, :, None, :])
        return v[:, :, None, :] + v[:, None, :, :]
    out_len = tf.shape(v)[1]
    v = tf.reshape(v, [tf.shape(v)[0], out_len, c, filters])
    # In-bounds mask m(t, b) of the padded positions, as TensorFlow pads.
    length = tf.shape(x)[1]
    effective = effective_size(c, dilation)
    if padding == "same":
        total = tf.maximum((out_len - 1) * strides + effective - length, 0)
        pad_before = total // 2
    else:
        pad_before = 0

    def in_bounds(t):
        pos = t[:, None] * strides + tf.range(c)[None, :] * dilation - pad_before
        return tf.cast((pos >= 0) & (pos < length), v.dtype)

    if layout == "upper":
        # T[s, t] depends on t only through its mask row, which is all ones
        # except for the first and last `edge` outputs: T is kept as a table
        # of P = 1 + 2 edge columns (all ones, then those outputs' rows) and
        # pattern[t] names t's column, so the (L, L) map T is never built.
        edge = -(-(effective - 1) // strides) if padding == "same" else 0
        ends = tf.range(edge)
        masks = tf.concat(
            [
                tf.ones([1, c], v.dtype),
                in_bounds(tf.minimum(ends, out_len - 1)),
                in_bounds(tf.maximum(out_len - edge + ends, 0)),
            ],
            axis=0,
        )
        table = tf.einsum("bscf,pc->bspf", v, masks)
        if bias is not None:
            # Half the bias on each term, as for kernel size 1.
            table = table + 0.5 * bias
        t = tf.range(out_len)
        pattern = tf.where(
            t < edge, 1 + t, tf.where(t >= out_len - edge, 1 + t - (out_len - 2 * edge), 0)
        )
        return pair_sum(table, pattern)
    t = tf.einsum("bscf,tc->bstf", v, in_bounds(tf.range(out_len)))
    z = t + tf.transpose(t, [0, 2, 1, 3])
    return z if bias is None else tf.nn.bias_add(z, bias)
