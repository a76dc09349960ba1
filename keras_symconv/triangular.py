"""Triangular compute of a symmetric convolution (pure TensorFlow functions).

A symmetry-preserving convolution of a symmetric map ``X (B, L, L, m)`` with
a kernel ``Q`` that satisfies ``Q[a, b] == Q[b, a]`` gives a symmetric map
``Y``. Only the entries on and above the diagonal are computed, in ``n`` row
strips: strip ``k`` holds output rows ``[o_k, o_{k+1})`` and columns
``[o_k, L')``, one ``conv2d`` of the input rows and columns it reads (with
the border padding given explicitly, so no padded copy of ``X`` is made).
The full map is one ``gather`` from the concatenated strips, which reads
every entry below the diagonal from its mirror image: the output is bitwise
symmetric.

The gradient (stride 1), with ``G`` the incoming gradient and
``S = G + G^T``:

* kernel: ``R = sum_k conv2d_backprop_filter(X_k, W_k)`` over the same strips,
  with ``W = S`` above the diagonal, ``S / 2`` on it and 0 below. ``R`` is not
  the full-kernel gradient, but its sums over the tied pairs ``(a, b)`` and
  ``(b, a)`` are, because ``X`` is symmetric; the kernel expander's gradient
  (eq. 5) takes exactly those sums, so the packed gradient is exact.
* input: ``conv_transpose(S / 2, Q)``, the symmetric part of the full input
  gradient. It is again a symmetric convolution (of ``S / 2`` with the
  flipped kernel), computed by the same strips. On symmetric inputs, which
  every symmetric network produces, the symmetric part is all that reaches
  the parameters upstream, so every parameter gradient is the full
  computation's.

Each of the three convolutions of a training step does about half the work
of ``conv2d``; the rest is the strips' diagonal blocks (computed whole,
``L h / 2`` entries per strip of height ``h``), the halos and the gather.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["strip_bounds", "make_triangular_conv", "min_length"]


def strip_bounds(length, strips):
    """Row bounds ``o_0 = 0 < o_1 < ... < o_n = length`` of ``strips`` strips.

    ``length`` may be a Python int or a scalar tensor; heights differ by at
    most one.
    """
    return [(k * length) // strips for k in range(strips + 1)]


def min_length(kernel_size, dilation, strips):
    """Shortest output side for which ``strips`` strips are used as such.

    Every strip must be at least as high as the kernel's reach, so that only
    the first strip touches the top/left border and only the last the bottom.
    """
    effective = (kernel_size - 1) * dilation + 1
    return strips * max(effective, 2)


def _mirror_index(length, bounds):
    """Flat index ``(L * L,)`` of every output entry in the concatenated strips.

    Entry ``(i, j)`` is read from ``(min(i, j), max(i, j))``, which lies in
    the strip holding row ``min(i, j)``.
    """
    starts = tf.stack(bounds[:-1])
    ends = tf.stack(bounds[1:])
    sizes = (ends - starts) * (length - starts)
    offsets = tf.concat([[0], tf.cumsum(sizes)[:-1]], axis=0)
    pos = tf.range(length)
    row = tf.minimum(pos[:, None], pos[None, :])
    col = tf.maximum(pos[:, None], pos[None, :])
    strip = tf.reduce_sum(tf.cast(row[:, :, None] >= ends[None, None, :], tf.int32), axis=-1)
    start = tf.gather(starts, strip)
    flat = tf.gather(offsets, strip) + (row - start) * (length - start) + (col - start)
    return tf.reshape(flat, [-1])


def _strip_slices(x, bounds, out_len, effective, pad_before, pad_after, dilation):
    """Input slice and explicit ``conv2d`` padding of every strip (stride 1).

    Strip ``k`` reads padded rows ``[o_k, o_{k+1} - 1 + effective)`` and
    padded columns ``[o_k, out_len - 1 + effective)``, i.e. unpadded ones
    shifted by ``pad_before``; only the first strip reaches the top/left
    border and only the last the bottom one (see :func:`min_length`).
    """
    strips = len(bounds) - 1
    for k in range(strips):
        o0, o1 = bounds[k], bounds[k + 1]
        first, last = k == 0, k == strips - 1
        r0 = 0 if first else o0 - pad_before
        r1 = o1 - 1 + effective - pad_before
        top = pad_before if first else 0
        bottom = pad_after if last else 0
        if last:
            r1 = r1 - pad_after
        pads = [[0, 0], [top, bottom], [top, pad_after], [0, 0]]
        yield x[:, r0:r1, r0:], pads


def _conv(xs, kernel, pads, dilation):
    if dilation == 1:
        return tf.nn.conv2d(xs, kernel, strides=1, padding=pads)
    # The CPU kernels of dilated conv2d lack a backward pass; convolution
    # lowers dilation itself (space to batch) and needs the padding done.
    return tf.nn.convolution(tf.pad(xs, pads), kernel, padding="VALID", dilations=dilation)


def _upper(
    x, kernel, bounds, index, out_len, effective, pad_before, pad_after, dilation, bias=None
):
    """The symmetric ``conv(x, kernel) (+ bias)`` from its upper-triangle strips."""
    batch, filters = tf.shape(x)[0], tf.shape(kernel)[-1]
    flat = [
        tf.reshape(_conv(xs, kernel, pads, dilation), [batch, -1, filters])
        for xs, pads in _strip_slices(
            x, bounds, out_len, effective, pad_before, pad_after, dilation
        )
    ]
    flat = tf.concat(flat, axis=1)
    if bias is not None:
        # On the strips, about half the entries of the map.
        flat = tf.nn.bias_add(flat, bias)
    full = tf.gather(flat, index, axis=1)
    return tf.reshape(full, [batch, out_len, out_len, filters])


def _kernel_grad(x, kernel, w, bounds, out_len, effective, pad_before, pad_after, dilation):
    total = None
    for k, (xs, pads) in enumerate(
        _strip_slices(x, bounds, out_len, effective, pad_before, pad_after, dilation)
    ):
        o0, o1 = bounds[k], bounds[k + 1]
        wk = w[:, o0:o1, o0:]
        if dilation == 1:
            part = tf.raw_ops.Conv2DBackpropFilter(
                input=xs,
                filter_sizes=tf.shape(kernel),
                out_backprop=wk,
                strides=[1, 1, 1, 1],
                padding="EXPLICIT",
                explicit_paddings=[p for pair in pads for p in pair],
            )
        else:
            with tf.GradientTape() as tape:
                tape.watch(kernel)
                yk = _conv(xs, kernel, pads, dilation)
            part = tape.gradient(yk, kernel, output_gradients=wk)
        total = part if total is None else total + part
    return total


def make_triangular_conv(kernel_size, dilation, padding, strips, use_bias=False):
    """``conv(x, kernel) (+ bias)`` computing only the upper triangle, with its gradient.

    Args:
        kernel_size: ``C``.
        dilation: dilation rate (stride is 1).
        padding: ``"same"`` or ``"valid"``.
        strips: number of row strips; the output side must be at least
            :func:`min_length` (the caller checks or falls back).
        use_bias: whether the function takes a third argument, a bias
            ``(F,)`` added to every entry (on the strips, before mirroring).

    Returns:
        ``f(x, kernel[, bias])`` for a symmetric ``x (B, L, L, m)`` and a full
        kernel ``(C, C, m, F)`` with ``kernel[a, b] == kernel[b, a]``: the
        ``tf.nn.convolution`` result (plus the bias), bitwise symmetric, under
        a ``tf.custom_gradient`` (positional tensors only).
    """
    effective = (kernel_size - 1) * dilation + 1
    if padding == "same":
        pad_before = (effective - 1) // 2
        pad_after = effective - 1 - pad_before
    else:
        pad_before = pad_after = 0
    # The input gradient is a 'valid' correlation of S padded by these.
    grad_before = effective - 1 - pad_before
    grad_after = effective - 1 - pad_after

    @tf.custom_gradient
    def triangular_conv(x, kernel, *bias):
        length = tf.shape(x)[1]
        out_len = length + pad_before + pad_after - effective + 1
        bounds = strip_bounds(out_len, strips)
        index = _mirror_index(out_len, bounds)
        y = _upper(
            x,
            kernel,
            bounds,
            index,
            out_len,
            effective,
            pad_before,
            pad_after,
            dilation,
            bias[0] if bias else None,
        )

        def grad(upstream):
            s = upstream + tf.transpose(upstream, [0, 2, 1, 3])
            # conv_transpose(S / 2, Q) = correlation of S with the flipped,
            # channel-swapped kernel; its output side is the input's.
            flipped = 0.5 * tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
            in_bounds = strip_bounds(length, strips)
            dx = _upper(
                s,
                flipped,
                in_bounds,
                _mirror_index(length, in_bounds),
                length,
                effective,
                grad_before,
                grad_after,
                dilation,
            )
            pos = tf.range(out_len)
            above = tf.cast(pos[:, None] < pos[None, :], s.dtype)
            on = tf.cast(pos[:, None] == pos[None, :], s.dtype)
            weight = above + 0.5 * on
            w = s * weight[None, :, :, None]
            dk = _kernel_grad(
                x, kernel, w, bounds, out_len, effective, pad_before, pad_after, dilation
            )
            if bias:
                return dx, dk, tf.reduce_sum(upstream, axis=[0, 1, 2])
            return dx, dk

        return y, grad

    if use_bias:
        return lambda x, kernel, bias: triangular_conv(x, kernel, bias)
    return lambda x, kernel: triangular_conv(x, kernel)
