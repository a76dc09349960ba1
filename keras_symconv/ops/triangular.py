"""Triangular compute of a symmetric convolution of a full map (pure TensorFlow).

A symmetry-preserving convolution of a symmetric map ``X (B, L, L, m)`` with
a kernel ``Q`` that satisfies ``Q[a, b] == Q[b, a]`` gives a symmetric map
``Y``. Only the entries on and above the diagonal are computed, in ``n`` row
strips: strip ``k`` holds output rows ``[o_k, o_{k+1})`` and columns
``[o_k, L')``, as a rectangle right of its diagonal block and the diagonal
block cut into ``s`` row pieces (each piece runs from its first row's
diagonal entry to the block's end, so little below the diagonal is
computed). Each block is one ``conv2d`` of the input rows and columns it
reads, with the border padding given explicitly (no padded copy of ``X``).
The full map is one ``gather`` from the concatenated blocks, which reads
every entry below the diagonal from its mirror image: the output is bitwise
symmetric.

The gradient (stride 1), with ``G`` the incoming gradient and
``S = G + G^T``:

* kernel: ``R = sum_k conv2d_backprop_filter(X_k, W_k)`` over the same blocks,
  with ``W = S`` above the diagonal, ``S / 2`` on it and 0 below. ``R`` is not
  the full-kernel gradient, but its sums over the tied pairs ``(a, b)`` and
  ``(b, a)`` are, because ``X`` is symmetric; the kernel expander's gradient
  (eq. 5) takes exactly those sums, so the packed gradient is exact.
* input: ``conv_transpose(S / 2, Q)``, the symmetric part of the full input
  gradient. It is again a symmetric convolution (of ``S / 2`` with the
  flipped kernel), computed by the same blocks. On symmetric inputs, which
  every symmetric network produces, the symmetric part is all that reaches
  the parameters upstream, so every parameter gradient is the full
  computation's.

Each of the three convolutions of a training step does about half the work
of ``conv2d``; the rest is the part of the diagonal pieces below the
diagonal (``1 / (2 n s)`` of the map), the halos and the gather.

The blocks are those of :class:`keras_symconv.ops.geometry.Blocks`; each is
one :func:`keras_symconv.ops.columns.block_conv2d`.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from keras_symconv.ops.columns import (
    block_conv2d,
    choose_columns,
    column_filter_grad,
    sum_parts,
)
from keras_symconv.ops.geometry import Blocks, conv_padding, min_side

__all__ = ["make_triangular_conv", "triangular_or_full"]


def _mirror_index(out_len, blocks):
    """Flat index ``(L'^2,)`` of every output entry in the concatenated blocks.

    Entry ``(i, j)`` is read from ``(min(i, j), max(i, j))``.
    """
    pos = tf.range(out_len)
    row = tf.reshape(tf.minimum(pos[:, None], pos[None, :]), [-1])
    col = tf.reshape(tf.maximum(pos[:, None], pos[None, :]), [-1])
    return blocks.position(row, col)


def _block_inputs(x, blocks, effective, pad_before, pad_after):
    """Input slice and explicit ``conv2d`` padding of every block (stride 1).

    Output block rows ``[r0, r1)`` read padded rows ``[r0, r1 - 1 + effective)``,
    i.e. unpadded ones shifted by ``pad_before``; the padding is only where
    the block touches the border.
    """
    for k in range(len(blocks)):
        r0, r1, c0, c1 = blocks.bounds(k)
        top, bottom, left, right = blocks.touches(k)
        rows = (
            0 if top else r0 - pad_before,
            r1 - 1 + effective - pad_before - (pad_after if bottom else 0),
        )
        cols = (
            0 if left else c0 - pad_before,
            c1 - 1 + effective - pad_before - (pad_after if right else 0),
        )
        pads = [
            [0, 0],
            [pad_before if top else 0, pad_after if bottom else 0],
            [pad_before if left else 0, pad_after if right else 0],
            [0, 0],
        ]
        yield x[:, rows[0] : rows[1], cols[0] : cols[1]], pads


def _upper(x, kernel, blocks, out_len, effective, pad_before, pad_after, dilation, bias=None):
    """The symmetric ``conv(x, kernel) (+ bias)`` from its upper-triangle blocks."""
    batch, filters = tf.shape(x)[0], tf.shape(kernel)[-1]
    pack = choose_columns(kernel.shape[-1], kernel.shape[1], kernel.dtype)
    flat = [
        tf.reshape(block_conv2d(xs, kernel, pads, dilation, pack), [batch, -1, filters])
        for xs, pads in _block_inputs(x, blocks, effective, pad_before, pad_after)
    ]
    flat = tf.concat(flat, axis=1)
    if bias is not None:
        # On the blocks, about half the entries of the map.
        flat = tf.nn.bias_add(flat, bias)
    full = tf.gather(flat, _mirror_index(out_len, blocks), axis=1)
    return tf.reshape(full, [batch, out_len, out_len, filters])


def _kernel_grad(x, kernel, w, blocks, effective, pad_before, pad_after, dilation):
    inputs = _block_inputs(x, blocks, effective, pad_before, pad_after)
    parts = []
    for k, (xs, pads) in enumerate(inputs):
        r0, r1, c0, c1 = blocks.bounds(k)
        if dilation != 1:
            with tf.GradientTape() as tape:
                tape.watch(kernel)
                yk = block_conv2d(xs, kernel, pads, dilation)
            parts.append(tape.gradient(yk, kernel, output_gradients=w[:, r0:r1, c0:c1]))
            continue
        # Padded here, not by the op: TensorFlow's CPU Conv2DBackpropFilter
        # with EXPLICIT padding is much slower than with VALID padding of the
        # same input padded (benchmarks/RESULTS.md, triangular compute).
        if any(p for pair in pads for p in pair):
            xs = tf.pad(xs, pads)
        pack = choose_columns(kernel.shape[-1], kernel.shape[1], kernel.dtype)
        parts.append(column_filter_grad(xs, w[:, r0:r1, c0:c1], kernel, pack))
    return sum_parts(parts)


@functools.cache
def make_triangular_conv(kernel_size, dilation, padding, strips, use_bias=False, splits=1):
    """``conv(x, kernel) (+ bias)`` computing only the upper triangle, with its gradient.

    Args:
        kernel_size: ``C``.
        dilation: dilation rate (stride is 1).
        padding: ``"same"`` or ``"valid"``.
        strips: number of row strips; the output side must be at least
            :func:`keras_symconv.ops.geometry.min_side` (the caller checks or
            falls back).
        use_bias: whether the function takes a third argument, a bias
            ``(F,)`` added to every entry (on the strips, before mirroring).
        splits: pieces the diagonal block of each strip is cut into (more
            pieces compute less below the diagonal, in more calls).

    Returns:
        ``f(x, kernel[, bias])`` for a symmetric ``x (B, L, L, m)`` and a full
        kernel ``(C, C, m, F)`` with ``kernel[a, b] == kernel[b, a]``: the
        ``tf.nn.convolution`` result (plus the bias), bitwise symmetric, under
        a ``tf.custom_gradient`` (positional tensors only). Cached: one
        function per set of arguments.
    """
    effective, pad_before, pad_after = conv_padding(kernel_size, dilation, padding)
    # The input gradient is a 'valid' correlation of S padded by these.
    grad_before = effective - 1 - pad_before
    grad_after = effective - 1 - pad_after

    @tf.custom_gradient
    def triangular_conv(x, kernel, *bias):
        length = tf.shape(x)[1]
        out_len = length + pad_before + pad_after - effective + 1
        blocks = Blocks(out_len, strips, splits)
        b = bias[0] if bias else None
        y = _upper(x, kernel, blocks, out_len, effective, pad_before, pad_after, dilation, b)

        def grad(upstream):
            s = upstream + tf.transpose(upstream, [0, 2, 1, 3])
            # conv_transpose(S / 2, Q) = correlation of S with the flipped,
            # channel-swapped kernel; its output side is the input's.
            flipped = 0.5 * tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
            dx = _upper(
                s,
                flipped,
                Blocks(length, strips, splits),
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
            dk = _kernel_grad(x, kernel, w, blocks, effective, pad_before, pad_after, dilation)
            if bias:
                return dx, dk, tf.reduce_sum(upstream, axis=[0, 1, 2])
            return dx, dk

        return y, grad

    if use_bias:
        return lambda x, kernel, bias: triangular_conv(x, kernel, bias)
    return lambda x, kernel: triangular_conv(x, kernel)


def triangular_or_full(x, kernel, bias, kernel_size, dilation, padding, plan):
    """The triangular compute with ``plan`` when the output side, known only
    at run time, is at least its :func:`~keras_symconv.ops.geometry.min_side`;
    the full ``conv2d`` otherwise (both branches are in the graph)."""
    effective, pad_before, pad_after = conv_padding(kernel_size, dilation, padding)
    args = (x, kernel) if bias is None else (x, kernel, bias)
    out_len = tf.shape(x)[1] + pad_before + pad_after - effective + 1

    def full():
        y = tf.nn.convolution(x, kernel, padding=padding.upper(), dilations=dilation)
        return y if bias is None else tf.nn.bias_add(y, bias)

    triangular = make_triangular_conv(
        kernel_size, dilation, padding, plan[0], bias is not None, plan[1]
    )
    return tf.cond(
        out_len >= min_side(kernel_size, dilation, *plan), lambda: triangular(*args), full
    )
