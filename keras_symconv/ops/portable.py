"""The layers' compute with ``keras.ops`` only: what JAX and PyTorch run.

On the TensorFlow backend the layers call the modules beside this one
(blocks, the triangular compute, the upper-layout convolution, the fused
generating convolution). On the other backends they call these functions,
which compute every convolution over the full map, with the same weights
and the same results:

- the kernel expansion is a ``keras.ops.take`` from the constant index map
  under ``keras.ops.custom_gradient``, whose gradient is the paper's update
  rule written out (eqs. 3 and 5), as on TensorFlow;
- ``layout="upper"`` maps are expanded to the full map, convolved, and
  stored again as their upper triangle;
- the fused generating layer builds the self-Cartesian product and
  convolves it with the generating kernel.

Shapes are static here (JAX traces with concrete shapes; PyTorch runs
eagerly).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from keras import ops

from keras_symconv._validation import integer
from keras_symconv.ops import slots

__all__ = [
    "make_kernel_expander",
    "packed_kernel_gradient",
    "pack_kernel",
    "conv",
    "self_cartesian",
    "symmetrize",
    "upper_length",
    "side_of",
    "to_upper",
    "from_upper",
    "preserving_conv",
    "fused_generating_conv",
    "upper_moments",
]


def packed_kernel_gradient(full_grad, idx, num_slots, generating):
    """The paper's update rule (as :func:`keras_symconv.ops.kernels.packed_kernel_gradient`)."""
    shape = tuple(full_grad.shape)
    grad = ops.reshape(full_grad, (-1,) + shape[-2:])
    if generating:
        n = shape[-2] // 2
        grad = grad[:, :n] + grad[:, n:]
    return ops.segment_sum(grad, ops.convert_to_tensor(idx), num_segments=num_slots)


def make_kernel_expander(kernel_size, generating):
    """``expand(packed) -> full kernel`` with the explicit update rule as its gradient."""
    c = integer(kernel_size, "kernel_size")
    idx = slots.symmetric_index_map(c)
    num_slots = slots.packed_size(c)

    @ops.custom_gradient
    def expand(packed):
        flat = ops.take(packed, idx, axis=0)
        if generating:
            flat = ops.concatenate([flat, flat], axis=1)
        full = ops.reshape(flat, (c, c) + tuple(flat.shape[1:]))

        def grad(*args, upstream=None):
            # JAX passes the upstream gradient positionally, PyTorch by keyword.
            if upstream is None:
                (upstream,) = args
            return packed_kernel_gradient(upstream, idx, num_slots, generating)

        return full, grad

    return expand


def pack_kernel(full, generating):
    """Pack a full kernel ``(C, C, ch, F)`` by reading one entry per slot."""
    c = int(full.shape[0])
    flat = ops.reshape(full, (c * c,) + tuple(full.shape[2:]))
    packed = ops.take(flat, slots.representative_positions(c), axis=0)
    if generating:
        packed = packed[:, : int(packed.shape[1]) // 2]
    return packed


def conv(x, kernel, bias, strides=1, dilation=1, padding="same"):
    """``keras.ops.conv`` over the whole map, plus ``bias`` (or ``None``)."""
    y = ops.conv(x, kernel, strides=strides, padding=padding, dilation_rate=dilation)
    return y if bias is None else y + bias


def self_cartesian(x):
    """``(batch, L, n)`` -> ``(batch, L, L, 2n)``, ``y[:, i, j] = concat(x[i], x[j])``."""
    batch, length, channels = ops.shape(x)
    full = (batch, length, length, channels)
    rows = ops.broadcast_to(ops.expand_dims(x, 2), full)
    cols = ops.broadcast_to(ops.expand_dims(x, 1), full)
    return ops.concatenate([rows, cols], axis=-1)


def symmetrize(x):
    """``(x + x^T) / 2`` over the two spatial axes."""
    return 0.5 * (x + ops.transpose(x, (0, 2, 1, 3)))


def upper_length(side):
    """``N = L (L + 1) / 2`` for a side ``L`` (a Python int or a tensor)."""
    return side * (side + 1) // 2


def side_of(n, name="input"):
    """The side ``L`` of an upper-layout map with ``n`` entries (``ValueError`` if none)."""
    side = (math.isqrt(8 * n + 1) - 1) // 2
    if upper_length(side) != n:
        raise ValueError(
            f"The {name} is not a symmetric map in the upper layout: its second axis has "
            f"{n} entries, not L (L + 1) / 2 for any side L."
        )
    return side


@functools.lru_cache(maxsize=64)
def _upper_indices(side):
    rows, cols = np.triu_indices(side)
    to_upper = (rows * side + cols).astype(np.int32)
    storage = np.zeros((side, side), np.int32)
    storage[rows, cols] = np.arange(len(rows), dtype=np.int32)
    storage = np.maximum(storage, storage.T)  # below the diagonal: the mirror's index
    return to_upper, storage.reshape(-1)


def to_upper(x):
    """``(batch, L, L, c)`` -> ``(batch, N, c)``, row-major upper triangle."""
    batch, side, _, channels = ops.shape(x)
    flat = ops.reshape(x, (batch, side * side, channels))
    return ops.take(flat, _upper_indices(int(side))[0], axis=1)


def from_upper(p):
    """``(batch, N, c)`` -> ``(batch, L, L, c)``, bitwise symmetric."""
    batch, n, channels = ops.shape(p)
    side = side_of(int(n))
    full = ops.take(p, _upper_indices(side)[1], axis=1)
    return ops.reshape(full, (batch, side, side, channels))


def preserving_conv(x, kernel, bias, spec, rules=None):
    """A symmetry-preserving convolution (a :class:`~keras_symconv.ops.geometry.Spec`),
    in full; ``layout="upper"`` maps go through the full map."""
    if spec.layout == "upper":
        x = from_upper(x)
    y = conv(x, kernel, bias, spec.strides, spec.dilation, spec.padding)
    return to_upper(y) if spec.layout == "upper" else y


def fused_generating_conv(x, half, bias, strides, dilation, padding, layout="full"):
    """What :func:`keras_symconv.ops.generating.fused_generating_conv` computes,
    through the self-Cartesian product and the generating kernel ``[S, S]``."""
    kernel = ops.concatenate([half, half], axis=2)
    y = conv(self_cartesian(x), kernel, bias, strides, dilation, padding)
    return to_upper(y) if layout == "upper" else y


def upper_moments(x):
    """Mean and (biased) variance per channel of the full maps of ``x`` (upper layout).

    An entry off the diagonal counts twice, a diagonal entry once, as in
    ``UpperBatchNormalization`` on TensorFlow.
    """
    batch, n, _ = ops.shape(x)
    side = side_of(int(n))
    r = np.arange(side)
    weight = np.full((int(n),), 2.0, np.float32)
    weight[r * side - r * (r - 1) // 2] = 1.0
    weight = ops.cast(weight[:, None], x.dtype)
    count = batch * side * side
    mean = ops.sum(x * weight, axis=(0, 1)) / count
    centre = ops.stop_gradient(mean)
    variance = ops.sum(ops.square(x - centre) * weight, axis=(0, 1)) / count
    return mean, variance
