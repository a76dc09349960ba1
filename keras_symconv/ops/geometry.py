"""Sizes of a convolution and the blocks that tile a map's upper triangle.

A square kernel of size ``C`` with dilation ``d`` spans
``effective_size(C, d) = (C - 1) d + 1`` entries of its input on each axis.

The symmetric convolutions compute the entries of an ``L x L`` output on
and above the diagonal in blocks (:class:`Blocks`): ``strips`` row strips
(rows ``[o_k, o_{k+1})``, :func:`strip_bounds`), each one a rectangle right
of its diagonal block (columns ``[o_{k+1}, L)``, none in the last strip) and
the diagonal block cut into ``splits`` row pieces, each running from its own
first row's diagonal entry to column ``o_{k+1}`` (so only a small triangle
below the diagonal is computed). Each block is one ``conv2d``.

The side ``L`` may be a Python int (the blocks are then NumPy vectors) or a
scalar tensor (int32 tensors, from a few vector operations whatever the
number of blocks, so a graph built for any side stays small).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = [
    "effective_size",
    "conv_padding",
    "output_length",
    "Spec",
    "strip_bounds",
    "min_side",
    "Blocks",
]


def effective_size(kernel_size, dilation=1):
    """Input entries a kernel of size ``C`` with dilation ``d`` spans: ``(C - 1) d + 1``."""
    return (kernel_size - 1) * dilation + 1


def conv_padding(kernel_size, dilation, padding):
    """``(effective size, padding before, padding after)`` on one axis, stride 1.

    ``padding``: ``"same"`` (as TensorFlow pads: the extra entry after) or
    ``"valid"``.
    """
    effective = effective_size(kernel_size, dilation)
    if padding == "same":
        before = (effective - 1) // 2
        return effective, before, effective - 1 - before
    return effective, 0, 0


def output_length(length, kernel_size, stride, dilation, padding):
    """Output side of a convolution of an input side ``length`` (``None`` stays ``None``)."""
    if length is None:
        return None
    if padding == "same":
        return math.ceil(length / stride)
    return max(0, (length - effective_size(kernel_size, dilation)) // stride + 1)


def strip_bounds(length, strips):
    """Row bounds ``o_0 = 0 < o_1 < ... < o_n = length`` of ``strips`` strips.

    ``length`` may be a Python int or a scalar tensor; heights differ by at
    most one.
    """
    return [(k * length) // strips for k in range(strips + 1)]


def min_side(kernel_size, dilation, strips, splits=1):
    """Shortest output side whose ``strips`` strips (diagonal blocks cut in
    ``splits``) are all at least as high as the kernel's span (and 2 rows),
    so that only the blocks on the map's border read its padding."""
    return strips * splits * max(effective_size(kernel_size, dilation), 2)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A square convolution's arguments (``padding`` in lower case)."""

    kernel_size: int
    strides: int = 1
    dilation: int = 1
    padding: str = "same"
    layout: str = "full"
    compute: str = "auto"

    def output_side(self, side):
        """Output side for an input side (``None`` stays ``None``)."""
        return output_length(side, self.kernel_size, self.strides, self.dilation, self.padding)


class Blocks:
    """The blocks of an output side's upper triangle, as vectors.

    Args:
        side: the output side ``L``, a Python int or a scalar int32 tensor.
        strips: row strips ``n``.
        splits: pieces ``s`` of each strip's diagonal block.

    Attributes:
        r0, c0, h, w: ``(nb,)`` each block's top-left output entry and size;
            NumPy int arrays when ``side`` is an int, int32 tensors otherwise.
        strip, part: ``(nb,)`` NumPy ints, each block's strip and place in it
            (``part < splits``: a diagonal piece; ``part == splits``: the
            strip's rectangle). The order is strip by strip, pieces first.
        piece: ``(nb,)`` NumPy bool, the diagonal pieces.
        static: whether ``side`` is a Python int.
    """

    def __init__(self, side, strips, splits):
        places = [(k, j) for k in range(strips) for j in range(splits + (k < strips - 1))]
        self.strips, self.splits = strips, splits
        self.strip = np.array([k for k, _ in places])
        self.part = np.array([j for _, j in places])
        self.piece = self.part < splits
        self.static = isinstance(side, (int, np.integer))
        if self.static:
            take, where = (lambda a, i: a[i]), np.where
            bounds = (np.arange(strips + 1) * side) // strips
        else:
            import tensorflow as tf  # a tensor side: the TensorFlow backend only

            take, where = tf.gather, tf.where
            bounds = (tf.range(strips + 1) * side) // strips
        top, bottom = take(bounds, self.strip), take(bounds, self.strip + 1)
        height = bottom - top
        first = top + (self.part * height) // splits
        last = top + ((self.part + 1) * height) // splits
        self.r0 = where(self.piece, first, top)
        self.c0 = where(self.piece, first, bottom)
        self.h = where(self.piece, last - first, height)
        self.w = where(self.piece, bottom - first, side - bottom)

    def __len__(self):
        return len(self.piece)

    def bounds(self, k):
        """``(r0, r1, c0, c1)`` of block ``k``: its rows ``[r0, r1)`` and columns ``[c0, c1)``."""
        r0, c0, h, w = self.r0[k], self.c0[k], self.h[k], self.w[k]
        return r0, r0 + h, c0, c0 + w

    def touches(self, k):
        """``(top, bottom, left, right)``: the map borders block ``k`` reaches.

        Known from the block's place, also when the side is a tensor.
        """
        strip, part, last = int(self.strip[k]), int(self.part[k]), self.strips - 1
        if self.piece[k]:
            first = strip == 0 and part == 0
            return first, strip == last and part == self.splits - 1, first, strip == last
        return strip == 0, False, False, True

    def position(self, row, col):
        """Flat index, in the blocks concatenated in order, of output entries ``(row, col)``.

        ``row <= col`` elementwise (on or above the diagonal), int32 tensors
        of one shape. The diagonal pieces tile the rows in order, so the
        piece holding row ``r`` is a ``searchsorted``; ``(r, c)`` lies in that
        piece, or in its strip's rectangle when ``c`` is past the strip's
        diagonal block.
        """
        import tensorflow as tf  # the blocks' compute runs on TensorFlow only

        r0, c0, h, w = (tf.cast(v, tf.int32) for v in (self.r0, self.c0, self.h, self.w))
        per_strip = self.splits + 1
        pieces = np.flatnonzero(self.piece)
        piece_end = tf.gather(r0 + h, pieces)
        strip_end = tf.gather(c0 + w, pieces)  # a piece's last column + 1 = o_{k+1}
        offset = tf.cumsum(h * w, exclusive=True)
        piece = tf.searchsorted(piece_end, tf.reshape(row, [-1]), side="right", out_type=tf.int32)
        piece = tf.reshape(piece, tf.shape(row))
        strip = piece // self.splits
        in_rect = col >= tf.gather(strip_end, piece)
        block = tf.where(
            in_rect, strip * per_strip + self.splits, strip * per_strip + piece % self.splits
        )
        return (
            tf.gather(offset, block)
            + (row - tf.gather(r0, block)) * tf.gather(w, block)
            + (col - tf.gather(c0, block))
        )
