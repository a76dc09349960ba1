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
pieces of :mod:`keras_symconv.triangular`. Its gradient, with ``g`` the
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

import math

import tensorflow as tf

from keras_symconv import triangular

__all__ = [
    "upper_length",
    "side_of",
    "upper_rows_cols",
    "diagonal_index",
    "map_side",
    "gather_entries",
    "to_upper",
    "from_upper",
    "make_upper_conv",
    "upper_plan",
]


def upper_length(side):
    """``N = L (L + 1) / 2`` for a side ``L`` (Python int or tensor)."""
    return side * (side + 1) // 2


def side_of(n, name="input"):
    """The side ``L`` of an upper-layout map with ``n`` entries.

    A Python int (or ``None``) gives a Python int (``None``) and raises
    ``ValueError`` when ``n`` is not ``L (L + 1) / 2``; a tensor gives a
    scalar int32 tensor (checked with an assertion).
    """
    if n is None:
        return None
    if isinstance(n, int):
        side = (math.isqrt(8 * n + 1) - 1) // 2
        if upper_length(side) != n:
            raise ValueError(
                f"The {name} is not a symmetric map in the upper layout: its second axis has "
                f"{n} entries, not L (L + 1) / 2 for any side L."
            )
        return side
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
    rows = tf.repeat(pos, side - pos)
    start = _index(rows, rows, side)
    cols = tf.range(upper_length(side)) - start + rows
    return rows, cols


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


def upper_plan(side, kernel_size, dilation, strip_height=64, max_strips=8, max_splits=4):
    """``(strips, splits)`` of the upper-layout convolution for a known output side.

    About one strip per ``strip_height`` rows (1 to ``max_strips``), the
    diagonal block of each cut into up to ``max_splits`` pieces of at least
    the kernel's reach (and 8 rows).
    """
    strips = min(max_strips, max(1, round(side / strip_height)))
    reach = max((kernel_size - 1) * dilation + 1, 8)
    splits = max(1, min(max_splits, (side // strips) // reach))
    return strips, splits


def _outside(start, stop, side):
    """Whether rows ``[start, stop)`` may leave ``[0, side)`` (True if unknown)."""
    known = all(isinstance(v, int) for v in (start, stop, side))
    return not known or start < 0 or stop > side


def _gather_block(x, side, i, j, keep=None):
    """Entries ``(min(i, j), max(i, j))`` of ``x`` (upper layout) as a block.

    ``i (h, 1)`` and ``j (1, w)`` are in-map rows and columns; the result is
    ``(batch, h, w, channels)``, times ``keep (h, w)`` when given.
    """
    idx = _index(tf.minimum(i, j), tf.maximum(i, j), side)
    block = tf.gather(x, tf.reshape(idx, [-1]), axis=1)
    shape = tf.stack([tf.shape(x)[0], tf.shape(i)[0], tf.shape(j)[1], tf.shape(x)[-1]])
    block = tf.reshape(block, shape)
    if keep is not None:
        block = block * tf.cast(keep, x.dtype)[None, :, :, None]
    return block


def _window(x, side, rows, cols):
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of the full map of ``x`` (upper layout).

    Entries below the diagonal read their mirror image; entries outside the
    map are 0 (the convolution's padding).
    """
    i = tf.range(rows[0], rows[1])[:, None]
    j = tf.range(cols[0], cols[1])[None, :]
    if not (_outside(*rows, side) or _outside(*cols, side)):
        return _gather_block(x, side, i, j)
    valid = (tf.minimum(i, j) >= 0) & (tf.maximum(i, j) < side)
    clip = lambda v: tf.clip_by_value(v, 0, side - 1)  # noqa: E731
    return _gather_block(x, side, clip(i), clip(j), valid)


def _valid_conv(xs, kernel, dilation):
    if dilation == 1:
        return tf.nn.conv2d(xs, kernel, strides=1, padding="VALID")
    return tf.nn.convolution(xs, kernel, padding="VALID", dilations=dilation)


def _block_windows(x, side, blocks, effective, pad_before):
    """Each block's input window (padding included) from ``x`` (upper layout)."""
    for r0, r1, c0, c1, _ in blocks:
        rows = (r0 - pad_before, r1 - 1 + effective - pad_before)
        cols = (c0 - pad_before, c1 - 1 + effective - pad_before)
        yield _window(x, side, rows, cols)


def _conv_upper(x, side, kernel, out_side, strips, splits, effective, pad_before, dilation):
    """The upper triangle of ``conv(from_upper(x), kernel)``."""
    blocks = triangular.upper_blocks(out_side, strips, splits)
    batch, filters = tf.shape(x)[0], tf.shape(kernel)[-1]
    flat = [
        tf.reshape(_valid_conv(win, kernel, dilation), [batch, -1, filters])
        for win in _block_windows(x, side, blocks, effective, pad_before)
    ]
    flat = flat[0] if len(flat) == 1 else tf.concat(flat, axis=1)
    rows, cols = upper_rows_cols(out_side)
    return tf.gather(flat, triangular.block_position(rows, cols, blocks, splits), axis=1)


def _upper_of_block(g, out_side, block, piece):
    """Block ``(r0, r1, c0, c1)`` of the full map of ``g`` (upper layout), 0 below the diagonal."""
    r0, r1, c0, c1, _ = block
    i = tf.range(r0, r1)[:, None]
    j = tf.range(c0, c1)[None, :]
    # Only a diagonal piece reaches below the diagonal.
    return _gather_block(g, out_side, i, j, (i <= j) if piece else None)


def make_upper_conv(kernel_size, dilation, padding, strips, splits, use_bias=False):
    """A symmetric convolution in the upper layout, with its gradient.

    Args:
        kernel_size: ``C``.
        dilation: dilation rate (stride is 1).
        padding: ``"same"`` or ``"valid"``.
        strips, splits: the blocks (:func:`keras_symconv.triangular.upper_blocks`)
            of the output's upper triangle, each one ``conv2d``; any output
            side works (blocks may be empty).
        use_bias: whether the function takes a third argument, a bias ``(F,)``.

    Returns:
        ``f(x, kernel[, bias])`` for ``x (B, N, m)`` in the upper layout and a
        full kernel ``(C, C, m, F)`` with ``kernel[a, b] == kernel[b, a]``:
        ``to_upper(conv(from_upper(x), kernel) (+ bias))``, under a
        ``tf.custom_gradient``.
    """
    effective, pad_before, pad_after = triangular.conv_padding(kernel_size, dilation, padding)
    # The input gradient is a 'valid' correlation with these paddings.
    grad_before = effective - 1 - pad_before
    per_strip = splits + 1

    @tf.custom_gradient
    def upper_conv(x, kernel, *bias):
        side = map_side(x)
        out_side = side + pad_before + pad_after - effective + 1
        y = _conv_upper(x, side, kernel, out_side, strips, splits, effective, pad_before, dilation)
        if bias:
            y = tf.nn.bias_add(y, bias[0])

        def grad(g):
            blocks = triangular.upper_blocks(out_side, strips, splits)
            dk = None
            windows = _block_windows(x, side, blocks, effective, pad_before)
            for n, (block, win) in enumerate(zip(blocks, windows, strict=True)):
                r0, r1, c0, c1, _ = block
                static = all(isinstance(v, int) for v in (r0, r1, c0, c1))
                if static and (r1 <= r0 or c1 <= c0):
                    continue
                w = _upper_of_block(g, out_side, block, piece=n % per_strip < splits)
                if dilation == 1:
                    part = tf.raw_ops.Conv2DBackpropFilter(
                        input=win,
                        filter_sizes=tf.shape(kernel),
                        out_backprop=w,
                        strides=[1, 1, 1, 1],
                        padding="VALID",
                    )
                else:
                    with tf.GradientTape() as tape:
                        tape.watch(kernel)
                        yk = _valid_conv(win, kernel, dilation)
                    part = tape.gradient(yk, kernel, output_gradients=w)
                if not static:
                    # A block may be empty when the side is small; the CPU
                    # kernel then returns an uninitialized filter gradient.
                    part = tf.where((r1 > r0) & (c1 > c0), part, tf.zeros_like(part))
                dk = part if dk is None else dk + part
            flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
            doubled = g * _diagonal_weight(out_side, 2.0, 1.0, g.dtype)[None, :, None]
            dx = _conv_upper(
                doubled, out_side, flipped, side, strips, splits, effective, grad_before, dilation
            )
            dx = dx * _diagonal_weight(side, 0.5, 1.0, dx.dtype)[None, :, None]
            if bias:
                return dx, dk, tf.reduce_sum(g, axis=[0, 1])
            return dx, dk

        return y, grad

    if use_bias:
        return lambda x, kernel, bias: upper_conv(x, kernel, bias)
    return lambda x, kernel: upper_conv(x, kernel)
