"""The upper-triangle layout of symmetric maps.

A symmetric map ``Z (batch, L, L, c)`` is stored as ``U (batch, N, c)`` with
``N = L (L + 1) / 2``: the entries ``(r, c)`` with ``r <= c`` in row-major
order::

    U[:, index(r, c)] == Z[:, r, c],   index(r, c) = r L - r (r - 1) / 2 + (c - r)

Every map between the layers of a symmetric network can live in this
layout: batch norm (with the full map's statistics,
:class:`~keras_symconv.UpperBatchNormalization`), elementwise activations
and channel concatenation act on it as they are, and a symmetry-preserving
convolution (``layout="upper"``) reads the input windows it needs with one
gather per block (entries below the diagonal from their mirror image, zeros
outside the map) and writes only the upper triangle. So a symmetric network
holds about half the activation memory of a plain one, in inference and in
training, and its batch norms and activations do half the work.

The convolution (:func:`make_upper_conv`) uses the row strips and diagonal
pieces of :class:`keras_symconv.ops.geometry.Blocks`. Its gradient, with ``g`` the
incoming gradient (upper layout):

* kernel: ``sum_k conv2d_backprop_filter(X_k, W_k)`` with ``W_k`` the block's
  entries of ``g`` on and above the diagonal and 0 below: the exact gradient
  of the full kernel, since the output reads only those entries;
* bias: the sum of ``g``;
* input: the same convolution of ``g`` (diagonal doubled) with the flipped,
  channel-swapped kernel, then the diagonal halved. With ``F`` the map from
  the upper layout to the full map, this is ``F^T conv^T F g'``, written as
  a symmetric convolution.

Pure TensorFlow functions; the side ``L`` may be a Python int (shapes known
when the graph is built) or a scalar tensor.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_symconv.ops import portable
from keras_symconv.ops.columns import (
    block_conv2d,
    choose_columns,
    column_filter_grad,
    sum_parts,
)
from keras_symconv.ops.geometry import Blocks, conv_padding
from keras_symconv.ops.portable import upper_length

__all__ = [
    "upper_length",
    "side_of",
    "upper_rows_cols",
    "diagonal_index",
    "map_side",
    "gather_entries",
    "pair_sum",
    "to_upper",
    "from_upper",
    "make_upper_conv",
    "full_conv_upper",
]


def side_of(n, name="input"):
    """The side ``L`` of an upper-layout map with ``n`` entries.

    A Python int (or ``None``) gives a Python int (``None``) and raises
    ``ValueError`` when ``n`` is not ``L (L + 1) / 2``; a tensor gives a
    scalar int32 tensor (checked with an assertion).
    """
    if n is None:
        return None
    if isinstance(n, int):
        return portable.side_of(n, name)
    n = tf.cast(n, tf.int32)
    root = tf.sqrt(tf.cast(8 * tf.cast(n, tf.int64) + 1, tf.float64))
    side = tf.cast(tf.round((root - 1.0) / 2.0), tf.int32)
    tf.debugging.assert_equal(
        upper_length(side), n, message=f"The {name} is not a symmetric map in the upper layout"
    )
    return side


def map_side(x, name="input"):
    """The side of ``x`` (upper layout): a Python int when its length is static."""
    n = x.shape[1]
    if n is not None:
        return side_of(int(n), name)
    return side_of(tf.shape(x)[1], name)


def _index(r, c, side):
    """Storage index of ``(r, c)``, ``r <= c``."""
    return r * side - r * (r - 1) // 2 + (c - r)


def upper_rows_cols(side):
    """Row and column ``(N,)`` int32 of every stored entry, in storage order."""
    pos = tf.range(side)
    index = tf.range(upper_length(side))
    # Row r ends at storage index _index(r, side - 1) + 1 (no tf.repeat: a
    # smaller graph).
    rows = tf.searchsorted(_index(pos, side - 1, side) + 1, index, side="right", out_type=tf.int32)
    return rows, index - _index(rows, rows, side) + rows


def diagonal_index(side):
    """Storage index ``(L,)`` of the diagonal entries ``(r, r)``."""
    pos = tf.range(side)
    return _index(pos, pos, side)


@tf.custom_gradient
def _gather_entries(params, indices):
    def grad(g):
        # A scatter-add into (batch * n) segments: no transpose of g, which
        # the gradient of tf.gather along axis 1 would make.
        batch, n = tf.shape(params)[0], tf.shape(params)[1]
        ids = tf.range(batch)[:, None] * n + indices[None, :]
        dense = tf.math.unsorted_segment_sum(g, ids, batch * n)
        return tf.reshape(dense, tf.shape(params)), None

    return tf.gather(params, indices, axis=1), grad


def gather_entries(params, indices):
    """``tf.gather(params, indices, axis=1)`` for ``params (batch, n, c)``.

    With a gradient that scatter-adds into ``params``' shape directly, where
    TensorFlow's gradient of a gather along axis 1 transposes the incoming
    gradient first (a copy of the largest tensor in the step).
    """
    return _gather_entries(params, tf.cast(indices, tf.int32))


def pair_sum(table, pattern=None, chunks=8):
    """The upper triangle of ``Z[r, c] = table[r, pattern[c]] + table[c, pattern[r]]``.

    Args:
        table: ``(batch, L, P, c)``; ``P = 1`` with ``pattern=None`` gives
            ``Z[r, c] = table[r, 0] + table[c, 0]``.
        pattern: ``(L,)`` int32 in ``[0, P)``, or None (all 0).
        chunks: the output is built in up to this many consecutive parts of
            its storage, each part's two gathers and sum made after the
            previous part's (a control dependency), then concatenated: the
            step holds about two outputs at most, where the two gathers and
            their sum over the whole map hold three. The gradient is made in
            as many parts (of rows).

    Returns:
        ``(batch, L (L + 1) / 2, c)`` in the upper layout (symmetric by
        construction).

    The gradient with respect to ``table``, with ``G`` the incoming gradient
    as a full symmetric map, is ``dT[k, q] = sum_c G[k, c] [pattern[c] = q]
    + [pattern[k] = q] G[k, k]``: each part of rows is read out of the
    upper layout with one gather (multithreaded) and summed over its
    columns, where scatter-adding every entry into its two table entries
    runs on one thread (the measured difference is in ``RESULTS.md``).
    """
    side = table.shape[1] if table.shape[1] is not None else tf.shape(table)[1]
    width = table.shape[2] if table.shape[2] is not None else tf.shape(table)[2]
    rows, cols = upper_rows_cols(side)
    if pattern is None:
        first, second = rows * width, cols * width
    else:
        pattern = tf.cast(pattern, tf.int32)
        first = rows * width + tf.gather(pattern, cols)
        second = cols * width + tf.gather(pattern, rows)
    n = upper_length(side)
    if isinstance(n, int):
        chunks = max(1, min(chunks, n // 4096))

    @tf.custom_gradient
    def run(table):
        flat = tf.reshape(table, tf.stack([tf.shape(table)[0], -1, tf.shape(table)[-1]]))
        if chunks == 1:
            out = tf.gather(flat, first, axis=1) + tf.gather(flat, second, axis=1)
        else:
            bounds = (tf.range(chunks + 1) * n) // chunks
            sizes = bounds[1:] - bounds[:-1]
            parts, last = [], []
            for a, b in zip(
                tf.split(first, sizes, num=chunks), tf.split(second, sizes, num=chunks), strict=True
            ):
                with tf.control_dependencies(last):
                    part = tf.gather(flat, a, axis=1) + tf.gather(flat, b, axis=1)
                parts.append(part)
                last = [part]
            out = tf.concat(parts, axis=1)

        def grad(g):
            return tf.reshape(_pair_sum_gradient(g, side, width, pattern, chunks), tf.shape(table))

        return out, grad

    return run(table)


def _pair_sum_gradient(g, side, width, pattern, chunks):
    """``dT (batch, L, P, c)`` of :func:`pair_sum` from ``g (batch, N, c)``."""
    pos = tf.range(side)
    bounds = (tf.range(chunks + 1) * side) // chunks
    onehot = None if pattern is None else tf.one_hot(pattern, width, dtype=g.dtype)  # (L, P)
    # Summing a part's columns by pattern value is a matmul (P, L) x (L, c)
    # per row; tf.einsum here transposed the part first, much slower
    # (benchmarks/RESULTS.md, "Fused symmetry generation").
    onehot_t = None if onehot is None else tf.transpose(onehot)[None]
    parts, last = [], []
    for k in range(chunks):
        with tf.control_dependencies(last):
            r = tf.range(bounds[k], bounds[k + 1])
            low = tf.minimum(r[:, None], pos[None, :])
            high = tf.maximum(r[:, None], pos[None, :])
            block = tf.gather(g, tf.reshape(_index(low, high, side), [-1]), axis=1)
            if onehot is None:
                block = tf.reshape(block, tf.stack([tf.shape(g)[0], -1, side, tf.shape(g)[-1]]))
                part = tf.reduce_sum(block, axis=2, keepdims=True)
            else:
                block = tf.reshape(block, tf.stack([-1, side, tf.shape(g)[-1]]))
                part = tf.matmul(onehot_t, block)  # (batch * rows, P, c)
                part = tf.reshape(part, tf.stack([tf.shape(g)[0], -1, width, tf.shape(g)[-1]]))
        parts.append(part)
        last = [part]
    rows = tf.concat(parts, axis=1) if chunks > 1 else parts[0]
    diagonal = tf.gather(g, diagonal_index(side), axis=1)[:, :, None, :]
    if onehot is None:
        if isinstance(width, int) and width == 1:
            return rows + diagonal
        # Only the first column is read without a pattern.
        return tf.pad(rows + diagonal, [[0, 0], [0, 0], [0, width - 1], [0, 0]])
    return rows + diagonal * onehot[None, :, :, None]


def _diagonal_weight(side, on, off, dtype):
    """``(N,)`` with ``on`` at the diagonal entries and ``off`` elsewhere."""
    n = upper_length(side)
    hits = tf.scatter_nd(diagonal_index(side)[:, None], tf.ones([side], dtype), [n])
    return off + (on - off) * hits


def to_upper(x):
    """``(batch, L, L, c)`` -> ``(batch, N, c)``: the entries on and above the diagonal.

    Reads only the upper triangle (a non-symmetric ``x`` loses its lower one).
    """
    side = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
    rows, cols = upper_rows_cols(side)
    flat = tf.reshape(x, [tf.shape(x)[0], -1, tf.shape(x)[-1]])
    return tf.gather(flat, rows * side + cols, axis=1)


def from_upper(p):
    """``(batch, N, c)`` -> ``(batch, L, L, c)``, bitwise symmetric."""
    side = map_side(p)
    pos = tf.range(side)
    row = tf.minimum(pos[:, None], pos[None, :])
    col = tf.maximum(pos[:, None], pos[None, :])
    full = tf.gather(p, tf.reshape(_index(row, col, side), [-1]), axis=1)
    return tf.reshape(full, [tf.shape(p)[0], side, side, tf.shape(p)[-1]])


def _gather_blocks(x, side, r0, c0, h, w, masked, mask, consume=None):
    """Blocks of the full map of ``x`` (upper layout), one ``(batch, h_k, w_k, c)`` each.

    Block ``k`` is rows ``[r0_k, r0_k + h_k)`` and columns ``[c0_k, c0_k +
    w_k)`` (vectors as in :class:`~keras_symconv.ops.geometry.Blocks`); entries
    below the diagonal read their mirror image. Where ``masked[k]`` (NumPy
    bool), entries are zeroed by ``mask``: ``"outside"`` (outside the map: the
    convolution's padding) or ``"below"`` (below the diagonal). The row and
    column of every entry of every block come from one set of vector
    operations; each block is then one gather of ``x``.

    With ``consume`` (``consume(k, block) -> tensor``), the list of its
    results instead, each block gathered only after the previous block's
    result is computed (a control dependency), so that one block at a time
    is alive rather than all of them (a copy of about 1.3 to 1.8 maps).
    """
    vec = lambda a: tf.cast(a, tf.int32)  # noqa: E731
    sizes = vec(h * w)
    nb = len(masked)
    ends = tf.cumsum(sizes)
    position = tf.range(tf.reduce_sum(sizes))
    # The block of each entry (tf.repeat builds a larger graph).
    block = tf.searchsorted(ends, position, side="right", out_type=tf.int32)
    local = position - tf.gather(ends - sizes, block)
    width = tf.gather(vec(w), block)
    i = tf.gather(vec(r0), block) + local // width
    j = tf.gather(vec(c0), block) + local % width
    keep = None
    if masked.any():
        if mask == "outside":
            keep = (tf.minimum(i, j) >= 0) & (tf.maximum(i, j) < side)
            i, j = tf.clip_by_value(i, 0, side - 1), tf.clip_by_value(j, 0, side - 1)
        else:
            keep = i <= j
        keep = tf.split(tf.cast(keep, x.dtype)[None, :, None], sizes, num=nb, axis=1)
    index = tf.split(_index(tf.minimum(i, j), tf.maximum(i, j), side), sizes, num=nb)
    batch, channels = tf.shape(x)[0], tf.shape(x)[-1]
    if isinstance(h, np.ndarray):
        hs, ws = [int(v) for v in h], [int(v) for v in w]
    else:
        hs, ws = tf.unstack(vec(h), num=nb), tf.unstack(vec(w), num=nb)
    out, last = [], []
    for k in range(nb):
        with tf.control_dependencies(last):
            entries = tf.gather(x, index[k], axis=1)
        if masked[k]:
            entries = entries * keep[k]
        entries = tf.reshape(entries, tf.stack([batch, hs[k], ws[k], channels]))
        if consume is not None:
            entries = consume(k, entries)
            last = [entries] if entries is not None else last
        out.append(entries)
    return out


def _block_windows(x, side, blocks, effective, pad_before, consume=None):
    """Each block's input window (padding included) from ``x`` (upper layout).

    When the blocks are not static, each window is one row and one column
    larger than its block needs (entries of the map or the padding's zeros):
    a block may then be empty (a small side), and an empty block's window
    would be smaller than the kernel, for which TensorFlow's CPU ``conv2d``
    (oneDNN) returns the input itself on some CPUs (seen on AMD EPYC) and
    its filter gradient is left uninitialized. The extra row and column
    make every window at least the kernel's span; the callers drop what
    they add, with no ``tf.cond`` per block (each one two more traced
    functions, and two more for its gradient).

    ``consume``: as in :func:`_gather_blocks`.
    """
    extra = 0 if blocks.static else 1
    r0, c0 = blocks.r0 - pad_before, blocks.c0 - pad_before
    h, w = blocks.h + (effective - 1 + extra), blocks.w + (effective - 1 + extra)
    if blocks.static and isinstance(side, int):
        masked = (np.minimum(r0, c0) < 0) | (np.maximum(r0 + h, c0 + w) > side)
    else:
        masked = np.ones(len(blocks), bool)
    return _gather_blocks(x, side, r0, c0, h, w, masked, "outside", consume)


def _conv_upper(x, side, kernel, out_side, strips, splits, effective, pad_before, dilation):
    """The upper triangle of ``conv(from_upper(x), kernel)``."""
    blocks = Blocks(out_side, strips, splits)
    shape = tf.stack([tf.shape(x)[0], -1, tf.shape(kernel)[-1]])
    pack = choose_columns(kernel.shape[-1], kernel.shape[1], kernel.dtype)

    def block(k, win):
        if blocks.static:
            if blocks.h[k] * blocks.w[k] == 0:
                return None
            return tf.reshape(block_conv2d(win, kernel, "VALID", dilation, pack), shape)
        # The window has one extra row and column (_block_windows): so has
        # the output, cut off here.
        y = block_conv2d(win, kernel, "VALID", dilation, pack)
        return tf.reshape(y[:, : blocks.h[k], : blocks.w[k]], shape)

    # One window at a time (each gathered after the previous block's
    # convolution). A block known to be empty (a small side) adds nothing;
    # its conv2d would not even build (static shapes).
    flat = _block_windows(x, side, blocks, effective, pad_before, consume=block)
    flat = [y for y in flat if y is not None]
    flat = flat[0] if len(flat) == 1 else tf.concat(flat, axis=1)
    rows, cols = upper_rows_cols(out_side)
    return tf.gather(flat, blocks.position(rows, cols), axis=1)


@functools.cache
def make_upper_conv(kernel_size, dilation, padding, strips, splits, use_bias=False):
    """A symmetric convolution in the upper layout, with its gradient.

    Args:
        kernel_size: ``C``.
        dilation: dilation rate (stride is 1).
        padding: ``"same"`` or ``"valid"``.
        strips, splits: the blocks (:class:`keras_symconv.ops.geometry.Blocks`)
            of the output's upper triangle, each one ``conv2d``; any output
            side works (blocks may be empty).
        use_bias: whether the function takes a third argument, a bias ``(F,)``.

    Returns:
        ``f(x, kernel[, bias])`` for ``x (B, N, m)`` in the upper layout and a
        full kernel ``(C, C, m, F)`` with ``kernel[a, b] == kernel[b, a]``:
        ``to_upper(conv(from_upper(x), kernel) (+ bias))``, under a
        ``tf.custom_gradient``.

    In a graph, the forward and backward computations (a few hundred small
    index operations and one ``conv2d`` per block each) are ``tf.function`` s,
    made once per set of arguments (the result is cached) and traced once
    per input dtype and shape class, not once per layer and per model: the
    graph holds one call operation for each, which the runtime inlines.
    Eagerly they run op by op.
    """
    effective, pad_before, pad_after = conv_padding(kernel_size, dilation, padding)
    # The input gradient is a 'valid' correlation with these paddings.
    grad_before = effective - 1 - pad_before

    def sides(x):
        side = map_side(x)
        return side, side + pad_before + pad_after - effective + 1

    def forward(x, kernel):
        side, out_side = sides(x)
        return _conv_upper(
            x, side, kernel, out_side, strips, splits, effective, pad_before, dilation
        )

    def backward(x, kernel, g):
        side, out_side = sides(x)
        blocks = Blocks(out_side, strips, splits)
        # The output blocks of g, 0 below the diagonal (only the diagonal
        # pieces reach below it).
        outs = _gather_blocks(
            g, out_side, blocks.r0, blocks.c0, blocks.h, blocks.w, blocks.piece, "below"
        )
        pack = choose_columns(kernel.shape[-1], kernel.shape[1], kernel.dtype)

        def kernel_part(k, win):
            w = outs[k]
            if blocks.static and blocks.h[k] * blocks.w[k] == 0:
                return None
            if not blocks.static:
                # The window has one extra row and column (_block_windows);
                # g gets them as zeros, which add nothing.
                w = tf.pad(w, [[0, 0], [0, 1], [0, 1], [0, 0]])
            if dilation == 1:
                return column_filter_grad(win, w, kernel, pack if blocks.static else 1)
            with tf.GradientTape() as tape:
                tape.watch(kernel)
                yk = block_conv2d(win, kernel, "VALID", dilation)
            return tape.gradient(yk, kernel, output_gradients=w)

        # One input window at a time, as in the forward pass.
        parts = _block_windows(x, side, blocks, effective, pad_before, consume=kernel_part)
        parts = [part for part in parts if part is not None]
        dk = sum_parts(parts)
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        doubled = g * _diagonal_weight(out_side, 2.0, 1.0, g.dtype)[None, :, None]
        dx = _conv_upper(
            doubled, out_side, flipped, side, strips, splits, effective, grad_before, dilation
        )
        return dx * _diagonal_weight(side, 0.5, 1.0, dx.dtype)[None, :, None], dk

    traced = {
        f: tf.function(f, reduce_retracing=True, autograph=False) for f in (forward, backward)
    }

    def run(f, *args):
        # Eagerly, op by op: a trace per new shape would cost more.
        return f(*args) if tf.executing_eagerly() else traced[f](*args)

    @tf.custom_gradient
    def upper_conv(x, kernel, *bias):
        y = run(forward, x, kernel)
        if bias:
            y = tf.nn.bias_add(y, bias[0])

        def grad(g):
            dx, dk = run(backward, x, kernel, g)
            if bias:
                return dx, dk, tf.reduce_sum(g, axis=[0, 1])
            return dx, dk

        return y, grad

    if use_bias:
        return lambda x, kernel, bias: upper_conv(x, kernel, bias)
    return lambda x, kernel: upper_conv(x, kernel)


def full_conv_upper(x, kernel, bias, dilation, padding):
    """:func:`make_upper_conv`'s function computed on the full map: ``x`` expanded,
    convolved whole, the upper triangle kept (a reference, slower)."""
    y = tf.nn.convolution(from_upper(x), kernel, padding=padding.upper(), dilations=dilation)
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    return to_upper(y)
