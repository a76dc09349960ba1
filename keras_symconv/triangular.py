"""Triangular compute of a symmetric convolution (pure TensorFlow functions).

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

Column packing (:func:`packed_conv2d`, :func:`packed_filter_grad`): on a
CPU whose convolutions pad the output channels to a multiple of the vector
width (oneDNN with AVX-512: 16 float32 lanes), a block with, say, 20 filters
costs as much as one with 32. The block is then computed on pixels that each
hold ``P`` adjacent columns (a free reshape of the input to ``P m`` channels
and of the output from ``P F``; stride 1, a kernel of ``(C + P - 2) // P + 1``
packed columns): at 20 filters and ``C = 13``, ``P = 4`` gives 80 output
channels, no padding. :func:`column_packing` decides, per convolution, from
the multiply-adds counted with the padding; the kernel gradient is packed
the same way.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

__all__ = [
    "strip_bounds",
    "make_triangular_conv",
    "min_length",
    "upper_blocks",
    "block_position",
    "block_table_position",
    "column_packing",
    "packed_conv2d",
    "packed_filter_grad",
    "packed_kernel",
    "packed_width",
]

#: Packing factors tried by :func:`column_packing`.
PACKINGS = (2, 4)
#: Largest fraction of the unpacked multiply-adds (as counted by
#: :func:`column_packing`) at which a convolution is packed.
PACKING_GAIN = 0.8


@functools.cache
def cpu_lanes():
    """float32 lanes the CPU convolutions pad output channels to, or ``None``.

    16 with AVX-512, 8 with AVX2 (oneDNN, TensorFlow's CPU convolutions on
    x86 Linux); ``None`` (no packing) where that is not known to hold: a GPU
    is visible, oneDNN is turned off (``TF_ENABLE_ONEDNN_OPTS=0``), or the
    CPU flags cannot be read.
    """
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() in ("0", "false", "False"):
        return None
    if tf.config.list_physical_devices("GPU"):
        return None
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return None
    if "avx512f" in flags:
        return 16
    return 8 if "avx2" in flags else None


def packed_width(kernel_width, pack):
    """Kernel width ``Q`` of the packed convolution (:func:`packed_kernel`)."""
    return (kernel_width + pack - 2) // pack + 1


def _channel_cost(channels, lanes):
    # Output channels are padded to whole vectors. With 16 lanes a last
    # vector filled to exactly one half cost more still (measured: 40 output
    # channels ran like 54, 20 like 32, 80 like 80); not measured with 8.
    padded = -(-channels // lanes) * lanes
    return padded * (1.125 if lanes == 16 and padded - channels == 8 else 1.0)


def column_packing(filters, kernel_width, dtype, lanes=None):
    """Columns per packed pixel (``P``) for :func:`packed_conv2d`; 1: a plain ``conv2d``.

    Counts the multiply-adds per output column and input channel, the output
    channels costed as the CPU computes them (padded to ``lanes``, default
    :func:`cpu_lanes`): ``Q cost(P F)`` packed (a pixel of ``P m`` input
    channels gives ``P`` columns; ``Q = packed_width(C, P)``) against
    ``C cost(F)``. Packs with the best ``P`` of :data:`PACKINGS` if it counts at most
    :data:`PACKING_GAIN` of that. float32 only. The same count decides the
    kernel gradient (:func:`packed_filter_grad`).
    """
    lanes = cpu_lanes() if lanes is None else lanes
    if not lanes or tf.as_dtype(dtype) != tf.float32 or filters is None or kernel_width is None:
        return 1

    def cost(p):
        width = kernel_width if p == 1 else packed_width(kernel_width, p)
        # Per output column and input channel: Q taps of P F channels.
        return width * _channel_cost(p * filters, lanes)

    best = min(PACKINGS, key=cost)
    return best if cost(best) <= PACKING_GAIN * cost(1) else 1


def _tap_table(kernel_width, pack):
    """Unpacked kernel column of every packed tap ``(q, s_in, s_out)``, flat."""
    q = packed_width(kernel_width, pack)
    return [
        pack * j + s_in - s_out for j in range(q) for s_in in range(pack) for s_out in range(pack)
    ]


def packed_kernel(kernel, pack):
    """``(C_h, C_w, m, F) -> (C_h, Q, P m, P F)``, the kernel of :func:`packed_conv2d`.

    Packed output pixel ``j`` holds output columns ``P j + s_out``; packed
    input pixel ``j + q`` holds input columns ``P (j + q) + s_in``; the tap
    between them is kernel column ``P q + s_in - s_out`` (0 outside the
    kernel).
    """
    kh, kw, m, filters = kernel.shape
    q = packed_width(kw, pack)
    # Kernel column b sits at b + P - 1; the taps reach b = -(P - 1) ... P Q - 1.
    padded = tf.pad(kernel, [[0, 0], [pack - 1, pack * q - kw], [0, 0], [0, 0]])
    index = [b + pack - 1 for b in _tap_table(kw, pack)]
    taps = tf.reshape(tf.gather(padded, index, axis=1), [kh, q, pack, pack, m, filters])
    taps = tf.transpose(taps, [0, 1, 2, 4, 3, 5])  # (C_h, Q, s_in, m, s_out, F)
    return tf.reshape(taps, [kh, q, pack * m, pack * filters])


def _to_pixels(t, pack, left, columns, channels):
    """``t (B, H, W, c)``, its columns padded (``left`` zeros first, zeros after
    up to ``columns``) and reshaped without a copy to ``(B, H, columns / P, P c)``."""
    t = tf.pad(t, [[0, 0], [0, 0], [left, columns - t.shape[2] - left], [0, 0]])
    shape = tf.shape(t)
    return tf.reshape(t, tf.stack([shape[0], shape[1], columns // pack, pack * channels]))


def packed_conv2d(x, kernel, padding, pack):
    """``tf.nn.conv2d(x, kernel, 1, padding)``, ``pack`` columns per pixel.

    Args:
        x: ``(B, H, W, m)``.
        kernel: ``(C_h, C_w, m, F)`` with a static shape.
        padding: ``"VALID"`` or explicit ``[[0, 0], [t, b], [l, r], [0, 0]]``.
        pack: ``P``; 1 is a plain ``conv2d``.

    The input's columns are padded (left and right padding, and zeros up to
    a whole number of packed pixels) and reshaped, without a copy, to
    ``(B, H, W_p / P, P m)``: ``P`` adjacent columns per pixel. A stride-1
    ``conv2d`` with :func:`packed_kernel` gives ``(B, H', W' / P, P F)``,
    reshaped (no copy) to ``(B, H', W', F)``; a few columns computed past
    ``W'`` are cut off. ``P F`` output channels fill the CPU's vectors where
    ``F`` leaves them part empty (:func:`column_packing`). A plain
    ``conv2d`` where ``W`` is unknown while the graph is built or the output
    is empty (TensorFlow's CPU kernel returns a malformed result for an
    input smaller than the kernel, so such shapes are left to the plain op).
    """
    width = x.shape[2]
    pads = [[0, 0] for _ in range(4)] if padding == "VALID" else [list(p) for p in padding]
    _, kw, m, filters = kernel.shape
    out_width = None if width is None else width + pads[2][0] + pads[2][1] - kw + 1
    if pack == 1 or out_width is None or out_width <= 0:
        return tf.nn.conv2d(x, kernel, strides=1, padding=padding)
    pixels = -(-out_width // pack)
    columns = pack * (pixels + packed_width(kw, pack) - 1)
    rows = "VALID" if pads[1] == [0, 0] else [[0, 0], pads[1], [0, 0], [0, 0]]
    y = tf.nn.conv2d(
        _to_pixels(x, pack, pads[2][0], columns, m), packed_kernel(kernel, pack), 1, rows
    )
    shape = tf.shape(y)
    y = tf.reshape(y, tf.stack([shape[0], shape[1], pixels * pack, filters]))
    return y[:, :, :out_width] if pixels * pack != out_width else y


def packed_filter_grad(x, out_backprop, kernel, pack):
    """``Conv2DBackpropFilter`` (stride 1, 'VALID') for ``kernel``, ``pack`` columns per pixel.

    Args:
        x: the input window ``(B, H + C_h - 1, W + C_w - 1, m)``.
        out_backprop: ``(B, H, W, F)``.
        kernel: the kernel ``(C_h, C_w, m, F)`` (only its shape is used).
        pack: ``P``; 1 is the plain op.

    The gradient of :func:`packed_kernel`'s convolution (both tensors packed
    as in :func:`packed_conv2d`, ``out_backprop`` padded with zero columns),
    each kernel column summed from its packed taps. The plain op where the
    kernel's shape or ``W`` is unknown while the graph is built.
    """
    out_width = out_backprop.shape[2]
    if pack == 1 or out_width is None or out_width <= 0 or None in kernel.shape:
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x,
            filter_sizes=tf.shape(kernel),
            out_backprop=out_backprop,
            strides=[1, 1, 1, 1],
            padding="VALID",
        )
    kh, kw, m, filters = kernel.shape
    q = packed_width(kw, pack)
    pixels = -(-out_width // pack)
    columns = pack * (pixels + q - 1)
    grad = tf.raw_ops.Conv2DBackpropFilter(
        input=_to_pixels(x, pack, 0, columns, m),
        filter_sizes=[kh, q, pack * m, pack * filters],
        out_backprop=_to_pixels(out_backprop, pack, 0, pixels * pack, filters),
        strides=[1, 1, 1, 1],
        padding="VALID",
    )
    grad = tf.reshape(grad, [kh, q, pack, m, pack, filters])
    grad = tf.reshape(tf.transpose(grad, [1, 2, 4, 0, 3, 5]), [q * pack * pack, kh, m, filters])
    # Taps outside the kernel go to one more segment, dropped.
    segments = [b if 0 <= b < kw else kw for b in _tap_table(kw, pack)]
    grad = tf.math.unsorted_segment_sum(grad, segments, kw + 1)[:kw]
    return tf.transpose(grad, [1, 0, 2, 3])


def strip_bounds(length, strips):
    """Row bounds ``o_0 = 0 < o_1 < ... < o_n = length`` of ``strips`` strips.

    ``length`` may be a Python int or a scalar tensor; heights differ by at
    most one.
    """
    return [(k * length) // strips for k in range(strips + 1)]


def min_length(kernel_size, dilation, strips, splits=1):
    """Shortest output side for which ``strips`` strips (each with its diagonal
    block cut in ``splits``) are used as such.

    Every block must be at least as high as the kernel's reach, so that only
    the blocks on the map's border touch it.
    """
    effective = (kernel_size - 1) * dilation + 1
    return strips * splits * max(effective, 2)


def upper_blocks(out_len, strips, splits):
    """The output blocks that tile the upper triangle (and the diagonal blocks).

    Strip ``k`` (rows ``[o_k, o_{k+1})``) is its diagonal part, cut into
    ``splits`` row pieces each running from its own first row to column
    ``o_{k+1}`` (only a small triangle below the diagonal is computed), and a
    rectangle of columns ``[o_{k+1}, L')``. Each block is ``(r0, r1, c0, c1,
    touches)`` with ``touches`` the borders it reaches (top, bottom, left,
    right): known from its place, also when the side is a tensor. The order
    is strip by strip, pieces first, then the rectangle (none in the last
    strip).
    """
    bounds = strip_bounds(out_len, strips)
    blocks = []
    for k in range(strips):
        o0, o1 = bounds[k], bounds[k + 1]
        last = k == strips - 1
        sub = [o0 + (j * (o1 - o0)) // splits for j in range(splits)] + [o1]
        for j in range(splits):
            d0, d1 = sub[j], sub[j + 1]
            first = k == 0 and j == 0
            blocks.append((d0, d1, d0, o1, (first, last and j == splits - 1, first, last)))
        if not last:
            blocks.append((o0, o1, o1, out_len, (k == 0, False, False, True)))
    return blocks


def block_position(row, col, blocks, splits):
    """Flat index, in the concatenated blocks, of output entries ``(row, col)``.

    ``row <= col`` elementwise (entries on or above the diagonal), int32
    tensors of one shape; ``blocks`` as :func:`upper_blocks` gives them.
    """

    def column(values):
        return tf.cast(tf.stack(values), tf.int32)

    return block_table_position(
        row,
        col,
        column([b[0] for b in blocks]),
        column([b[2] for b in blocks]),
        column([b[1] - b[0] for b in blocks]),
        column([b[3] - b[2] for b in blocks]),
        splits,
    )


def block_table_position(row, col, r0, c0, h, w, splits):
    """:func:`block_position` with the blocks given as vectors.

    ``r0, c0, h, w`` (``(nb,)``, in :func:`upper_blocks`' order): each
    block's top-left output entry and size. The diagonal pieces tile the rows
    in order, so the piece holding row ``r`` is a ``searchsorted``; ``(r, c)``
    lies in that piece, or in its strip's rectangle when ``c`` is past the
    strip's diagonal block.
    """
    r0, c0, h, w = (tf.cast(v, tf.int32) for v in (r0, c0, h, w))
    per_strip = splits + 1
    pieces = [n for n in range(int(r0.shape[0])) if n % per_strip < splits]
    piece_end = tf.gather(r0 + h, pieces)
    strip_end = tf.gather(c0 + w, pieces)  # a piece's last column + 1 = o_{k+1}
    offset = tf.cumsum(h * w, exclusive=True)

    piece = tf.searchsorted(piece_end, tf.reshape(row, [-1]), side="right", out_type=tf.int32)
    piece = tf.reshape(piece, tf.shape(row))
    strip = piece // splits
    in_rect = col >= tf.gather(strip_end, piece)
    block = tf.where(in_rect, strip * per_strip + splits, strip * per_strip + piece % splits)
    return (
        tf.gather(offset, block)
        + (row - tf.gather(r0, block)) * tf.gather(w, block)
        + (col - tf.gather(c0, block))
    )


def _mirror_index(out_len, blocks, splits):
    """Flat index ``(L'^2,)`` of every output entry in the concatenated blocks.

    Entry ``(i, j)`` is read from ``(min(i, j), max(i, j))``.
    """
    pos = tf.range(out_len)
    row = tf.reshape(tf.minimum(pos[:, None], pos[None, :]), [-1])
    col = tf.reshape(tf.maximum(pos[:, None], pos[None, :]), [-1])
    return block_position(row, col, blocks, splits)


def _block_inputs(x, blocks, effective, pad_before, pad_after):
    """Input slice and explicit ``conv2d`` padding of every block (stride 1).

    Output block rows ``[r0, r1)`` read padded rows ``[r0, r1 - 1 + effective)``,
    i.e. unpadded ones shifted by ``pad_before``; the padding is only where
    the block touches the border.
    """
    for r0, r1, c0, c1, (top, bottom, left, right) in blocks:
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


def _conv(xs, kernel, pads, dilation, pack=1):
    if dilation == 1:
        return packed_conv2d(xs, kernel, pads, pack)
    # The CPU kernels of dilated conv2d lack a backward pass; convolution
    # lowers dilation itself (space to batch) and needs the padding done.
    return tf.nn.convolution(tf.pad(xs, pads), kernel, padding="VALID", dilations=dilation)


def _groups(blocks, keys):
    """Block indices grouped by ``keys`` (first-seen order); one group per block if dynamic.

    Blocks of one shape (the diagonal pieces of equal strips) are
    convolved in one call, stacked along the batch axis: timed alone, the
    small pieces cost up to 2.7x as much per output entry as the large
    blocks (in a whole step the gain was smaller: kernel gradient 289 ->
    278 ms at C = 13, 40 -> 20, L = 512).
    """
    if not all(isinstance(v, int) for b in blocks for v in b[:4]):
        return [[k] for k in range(len(blocks))]
    groups = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    return list(groups.values())


def _stacked(parts):
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


def _upper(
    x, kernel, blocks, splits, out_len, effective, pad_before, pad_after, dilation, bias=None
):
    """The symmetric ``conv(x, kernel) (+ bias)`` from its upper-triangle blocks."""
    batch, filters = tf.shape(x)[0], tf.shape(kernel)[-1]
    pack = column_packing(kernel.shape[-1], kernel.shape[1], kernel.dtype)
    inputs = list(_block_inputs(x, blocks, effective, pad_before, pad_after))
    keys = [
        (b[1] - b[0], b[3] - b[2], str(pads)) for b, (_, pads) in zip(blocks, inputs, strict=True)
    ]
    flat = [None] * len(blocks)
    for group in _groups(blocks, keys):
        xs = _stacked([inputs[k][0] for k in group])
        y = _conv(xs, kernel, inputs[group[0]][1], dilation, pack)
        parts = [y] if len(group) == 1 else tf.split(y, len(group), axis=0)
        for k, part in zip(group, parts, strict=True):
            flat[k] = tf.reshape(part, [batch, -1, filters])
    flat = tf.concat(flat, axis=1)
    if bias is not None:
        # On the blocks, about half the entries of the map.
        flat = tf.nn.bias_add(flat, bias)
    full = tf.gather(flat, _mirror_index(out_len, blocks, splits), axis=1)
    return tf.reshape(full, [batch, out_len, out_len, filters])


def _kernel_grad(x, kernel, w, blocks, effective, pad_before, pad_after, dilation):
    inputs = list(_block_inputs(x, blocks, effective, pad_before, pad_after))
    if dilation != 1:
        total = None
        for (r0, r1, c0, c1, _), (xs, pads) in zip(blocks, inputs, strict=True):
            with tf.GradientTape() as tape:
                tape.watch(kernel)
                yk = _conv(xs, kernel, pads, dilation)
            part = tape.gradient(yk, kernel, output_gradients=w[:, r0:r1, c0:c1])
            total = part if total is None else total + part
        return total
    # Padded here, not by the op: TensorFlow's CPU Conv2DBackpropFilter with
    # EXPLICIT padding took 3.2x as long as with VALID padding of the same
    # input padded (C = 13, 40 -> 20 channels, L = 512).
    windows = [
        tf.pad(xs, pads) if any(p for pair in pads for p in pair) else xs for xs, pads in inputs
    ]
    pack = column_packing(kernel.shape[-1], kernel.shape[1], kernel.dtype)
    parts = []
    for group in _groups(blocks, [(b[1] - b[0], b[3] - b[2]) for b in blocks]):
        parts.append(
            packed_filter_grad(
                _stacked([windows[k] for k in group]),
                _stacked([w[:, b[0] : b[1], b[2] : b[3]] for b in (blocks[k] for k in group)]),
                kernel,
                pack,
            )
        )
    return tf.add_n(parts)


def conv_padding(kernel_size, dilation, padding):
    """``(effective kernel size, padding before, padding after)`` of one side."""
    effective = (kernel_size - 1) * dilation + 1
    if padding == "same":
        pad_before = (effective - 1) // 2
        return effective, pad_before, effective - 1 - pad_before
    return effective, 0, 0


def make_triangular_conv(kernel_size, dilation, padding, strips, use_bias=False, splits=1):
    """``conv(x, kernel) (+ bias)`` computing only the upper triangle, with its gradient.

    Args:
        kernel_size: ``C``.
        dilation: dilation rate (stride is 1).
        padding: ``"same"`` or ``"valid"``.
        strips: number of row strips; the output side must be at least
            :func:`min_length` (the caller checks or falls back).
        splits: pieces the diagonal block of each strip is cut into (more
            pieces compute less below the diagonal, in more calls).
        use_bias: whether the function takes a third argument, a bias
            ``(F,)`` added to every entry (on the strips, before mirroring).

    Returns:
        ``f(x, kernel[, bias])`` for a symmetric ``x (B, L, L, m)`` and a full
        kernel ``(C, C, m, F)`` with ``kernel[a, b] == kernel[b, a]``: the
        ``tf.nn.convolution`` result (plus the bias), bitwise symmetric, under
        a ``tf.custom_gradient`` (positional tensors only).
    """
    effective, pad_before, pad_after = conv_padding(kernel_size, dilation, padding)
    # The input gradient is a 'valid' correlation of S padded by these.
    grad_before = effective - 1 - pad_before
    grad_after = effective - 1 - pad_after

    @tf.custom_gradient
    def triangular_conv(x, kernel, *bias):
        length = tf.shape(x)[1]
        out_len = length + pad_before + pad_after - effective + 1
        blocks = upper_blocks(out_len, strips, splits)
        y = _upper(
            x,
            kernel,
            blocks,
            splits,
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
            dx = _upper(
                s,
                flipped,
                upper_blocks(length, strips, splits),
                splits,
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
