"""Where each entry of a symmetric kernel is stored (NumPy only, any backend).

A square kernel of spatial size ``C`` has ``P = C (C + 1) / 2`` packed
spatial slots, one for each position ``(a, b)`` with ``a >= b``; the
expansion to the full kernel (:mod:`keras_symconv.ops.kernels` on
TensorFlow, :mod:`keras_symconv.ops.portable` on the other backends) reads
them through :func:`symmetric_index_map`.
"""

from __future__ import annotations

import numpy as np

from keras_symconv._validation import integer

__all__ = [
    "packed_size",
    "packed_slot",
    "symmetric_index_map",
    "representative_positions",
    "packed_kernel_shape",
    "full_kernel_shape",
    "num_kernel_params",
    "num_conv2d_kernel_params",
]


def packed_size(kernel_size: int) -> int:
    """Number of packed spatial slots, ``C (C + 1) / 2``, for kernel size ``C``."""
    c = integer(kernel_size, "kernel_size")
    return c * (c + 1) // 2


def packed_slot(a: int, b: int) -> int:
    """Packed slot of kernel position ``(a, b)``: row-major lower triangle.

    The slot of ``(a, b)`` equals the slot of ``(b, a)``; for ``a >= b`` it is
    ``a (a + 1) / 2 + b``.
    """
    hi, lo = max(a, b), min(a, b)
    return hi * (hi + 1) // 2 + lo


def symmetric_index_map(kernel_size: int) -> np.ndarray:
    """Index map ``idx`` of shape ``(C * C,)``, int32.

    ``idx[a * C + b]`` is the packed slot of kernel position ``(a, b)``.

    >>> symmetric_index_map(2).tolist()
    [0, 1, 1, 2]
    """
    c = integer(kernel_size, "kernel_size")
    a, b = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return (hi * (hi + 1) // 2 + lo).reshape(-1).astype(np.int32)


def representative_positions(kernel_size: int) -> np.ndarray:
    """Flattened position ``a * C + b`` (with ``a >= b``) of each packed slot.

    ``full.reshape(C * C, ...)[representative_positions(C)]`` packs a full
    kernel by reading one representative entry per slot.
    """
    c = integer(kernel_size, "kernel_size")
    return np.array([a * c + b for a in range(c) for b in range(a + 1)], dtype=np.int32)


def packed_kernel_shape(kernel_size, in_channels, filters, generating):
    """Shape of the packed (trainable) kernel.

    Args:
        kernel_size: spatial size ``C``.
        in_channels: channels of the layer input (``2n`` for a generating
            layer, ``m`` for a preserving one).
        filters: output channels ``F``.
        generating: whether the kernel is symmetry generating.
    """
    if generating:
        if in_channels % 2:
            raise ValueError(
                "A symmetry generating kernel needs an even number of input "
                "channels (a self-Cartesian product has 2n). "
                f"Received: in_channels={in_channels}"
            )
        in_channels //= 2
    return (packed_size(kernel_size), int(in_channels), int(filters))


def full_kernel_shape(kernel_size, in_channels, filters):
    """Shape ``(C, C, in_channels, filters)`` of the expanded kernel."""
    c = integer(kernel_size, "kernel_size")
    return (c, c, int(in_channels), int(filters))


def num_kernel_params(kernel_size, in_channels, filters, generating):
    """Free kernel weights: ``C(C+1)/2 * channels * filters``.

    ``channels`` is ``n = in_channels / 2`` for a generating kernel and
    ``m = in_channels`` for a preserving one (bias excluded).
    """
    p, ch, f = packed_kernel_shape(kernel_size, in_channels, filters, generating)
    return p * ch * f


def num_conv2d_kernel_params(kernel_size, in_channels, filters):
    """Kernel weights of a plain ``Conv2D`` of the same shape (bias excluded)."""
    c, _, i, f = full_kernel_shape(kernel_size, in_channels, filters)
    return c * c * i * f
