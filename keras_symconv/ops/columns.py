"""Convolutions on pixels that hold several adjacent columns (CPU).

On a CPU whose convolutions pad the output channels to a multiple of the
vector width (oneDNN with AVX-512: 16 float32 lanes), a block with, say, 20
filters costs as much as one with 32. Such a block is computed on pixels
that each hold ``P`` adjacent columns (a free reshape of the input to
``P m`` channels and of the output from ``P F``; stride 1, a kernel of
``(C + P - 2) // P + 1`` columns of taps): at 20 filters and ``C = 13``,
``P = 4`` gives 80 output channels, no padding. :func:`choose_columns`
decides, per convolution, from the multiply-adds counted with the padding;
the kernel gradient is computed the same way (:func:`column_filter_grad`).
:func:`block_conv2d` is the one ``conv2d`` of a block of the symmetric
convolutions.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

__all__ = [
    "cpu_lanes",
    "choose_columns",
    "column_kernel_width",
    "column_kernel",
    "column_conv2d",
    "column_filter_grad",
    "block_conv2d",
]

#: Columns per pixel tried by :func:`choose_columns`.
COLUMN_CHOICES = (2, 4)
#: Largest fraction of the plain multiply-adds (as counted by
#: :func:`choose_columns`) at which a convolution runs on column pixels.
COLUMN_GAIN = 0.8


@functools.cache
def cpu_lanes():
    """float32 lanes the CPU convolutions pad output channels to, or ``None``.

    16 with AVX-512, 8 with AVX2 (oneDNN, TensorFlow's CPU convolutions on
    x86 Linux); ``None`` (plain conv2d) where that is not known to hold: a GPU
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


def column_kernel_width(kernel_width, pack):
    """Kernel width ``Q`` of the column convolution (:func:`column_kernel`)."""
    return (kernel_width + pack - 2) // pack + 1


def _channel_cost(channels, lanes):
    # Output channels are padded to whole vectors, and with 16 lanes a last
    # vector filled to exactly one half costs more still: the weights are
    # from benchmarks/RESULTS.md, "Triangular compute", column packing.
    padded = -(-channels // lanes) * lanes
    return padded * (1.125 if lanes == 16 and padded - channels == 8 else 1.0)


def choose_columns(filters, kernel_width, dtype, lanes=None):
    """Columns per column pixel (``P``) for :func:`column_conv2d`; 1: a plain ``conv2d``.

    Counts the multiply-adds per output column and input channel, the output
    channels costed as the CPU computes them (padded to ``lanes``, default
    :func:`cpu_lanes`): ``Q cost(P F)`` on column pixels (a pixel of ``P m`` input
    channels gives ``P`` columns; ``Q = column_kernel_width(C, P)``) against
    ``C cost(F)``. Uses the best ``P`` of :data:`COLUMN_CHOICES` if it counts at most
    :data:`COLUMN_GAIN` of that. float32 only. The same count decides the
    kernel gradient (:func:`column_filter_grad`).
    """
    lanes = cpu_lanes() if lanes is None else lanes
    if not lanes or tf.as_dtype(dtype) != tf.float32 or filters is None or kernel_width is None:
        return 1

    def cost(p):
        width = kernel_width if p == 1 else column_kernel_width(kernel_width, p)
        # Per output column and input channel: Q taps of P F channels.
        return width * _channel_cost(p * filters, lanes)

    best = min(COLUMN_CHOICES, key=cost)
    return best if cost(best) <= COLUMN_GAIN * cost(1) else 1


def _tap_table(kernel_width, pack):
    """Kernel column of every tap ``(q, s_in, s_out)``, flat."""
    q = column_kernel_width(kernel_width, pack)
    return [
        pack * j + s_in - s_out for j in range(q) for s_in in range(pack) for s_out in range(pack)
    ]


def column_kernel(kernel, pack):
    """``(C_h, C_w, m, F) -> (C_h, Q, P m, P F)``, the kernel of :func:`column_conv2d`.

    Output pixel ``j`` holds output columns ``P j + s_out``;
    input pixel ``j + q`` holds input columns ``P (j + q) + s_in``; the tap
    between them is kernel column ``P q + s_in - s_out`` (0 outside the
    kernel).
    """
    kh, kw, m, filters = kernel.shape
    q = column_kernel_width(kw, pack)
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


def column_conv2d(x, kernel, padding, pack):
    """``tf.nn.conv2d(x, kernel, 1, padding)``, ``pack`` columns per pixel.

    Args:
        x: ``(B, H, W, m)``.
        kernel: ``(C_h, C_w, m, F)`` with a static shape.
        padding: ``"VALID"`` or explicit ``[[0, 0], [t, b], [l, r], [0, 0]]``.
        pack: ``P``; 1 is a plain ``conv2d``.

    The input's columns are padded (left and right padding, and zeros up to
    a whole number of column pixels) and reshaped, without a copy, to
    ``(B, H, W_p / P, P m)``: ``P`` adjacent columns per pixel. A stride-1
    ``conv2d`` with :func:`column_kernel` gives ``(B, H', W' / P, P F)``,
    reshaped (no copy) to ``(B, H', W', F)``; a few columns computed past
    ``W'`` are cut off. ``P F`` output channels fill the CPU's vectors where
    ``F`` leaves them part empty (:func:`choose_columns`). A plain
    ``conv2d`` where ``W`` or a channel count is unknown while the graph is
    built (a backward pass can lose the kernel's static channels) or the output
    is empty (TensorFlow's CPU kernel returns a malformed result for an
    input smaller than the kernel, so such shapes are left to the plain op).
    """
    width = x.shape[2]
    pads = [[0, 0] for _ in range(4)] if padding == "VALID" else [list(p) for p in padding]
    _, kw, m, filters = kernel.shape
    out_width = None if width is None else width + pads[2][0] + pads[2][1] - kw + 1
    if pack == 1 or out_width is None or out_width <= 0 or m is None or filters is None:
        return tf.nn.conv2d(x, kernel, strides=1, padding=padding)
    pixels = -(-out_width // pack)
    columns = pack * (pixels + column_kernel_width(kw, pack) - 1)
    rows = "VALID" if pads[1] == [0, 0] else [[0, 0], pads[1], [0, 0], [0, 0]]
    y = tf.nn.conv2d(
        _to_pixels(x, pack, pads[2][0], columns, m), column_kernel(kernel, pack), 1, rows
    )
    shape = tf.shape(y)
    y = tf.reshape(y, tf.stack([shape[0], shape[1], pixels * pack, filters]))
    return y[:, :, :out_width] if pixels * pack != out_width else y


def column_filter_grad(x, out_backprop, kernel, pack):
    """``Conv2DBackpropFilter`` (stride 1, 'VALID') for ``kernel``, ``pack`` columns per pixel.

    Args:
        x: the input window ``(B, H + C_h - 1, W + C_w - 1, m)``.
        out_backprop: ``(B, H, W, F)``.
        kernel: the kernel ``(C_h, C_w, m, F)`` (only its shape is used).
        pack: ``P``; 1 is the plain op.

    The gradient of :func:`column_kernel`'s convolution (both tensors on column pixels
    as in :func:`column_conv2d`, ``out_backprop`` padded with zero columns),
    each kernel column summed from its taps. The plain op where the
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
    q = column_kernel_width(kw, pack)
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


def block_conv2d(x, kernel, padding, dilation, pack=1):
    """One block's stride-1 convolution: ``"VALID"`` or explicit ``padding``.

    :func:`column_conv2d` (``pack`` columns per pixel) without dilation. With
    dilation, ``tf.nn.convolution`` on the input padded here: the CPU
    kernels of dilated ``conv2d`` lack a backward pass, and
    ``tf.nn.convolution`` lowers dilation itself (space to batch).
    """
    if dilation == 1:
        return column_conv2d(x, kernel, padding, pack)
    if padding != "VALID":
        x = tf.pad(x, padding)
    return tf.nn.convolution(x, kernel, padding="VALID", dilations=dilation)


def sum_parts(parts):
    """``tf.add_n(parts)``, accumulated in float32 when the parts are 16-bit.

    The blocks' kernel gradients are partial sums of one gradient; adding
    many of them in float16 or bfloat16 loses the small ones, so they are
    added in float32 and rounded once.
    """
    dtype = parts[0].dtype
    if dtype in (tf.float16, tf.bfloat16) and len(parts) > 1:
        return tf.cast(tf.add_n([tf.cast(p, tf.float32) for p in parts]), dtype)
    return tf.add_n(parts)
