"""The layers' compute with ``keras.ops`` only: what JAX and PyTorch run.

On the TensorFlow backend the layers call the modules beside this one
(blocks with hand-written gradients, the upper-layout convolution, the
fused generating convolution). On the other backends they call these
functions, with the same weights and the same results:

- the kernel expansion is a ``keras.ops.take`` from the constant index map
  under ``keras.ops.custom_gradient``, whose gradient is the paper's update
  rule written out (eqs. 3 and 5), as on TensorFlow;
- the symmetry-preserving convolution computes the upper triangle in the
  blocks of :class:`~keras_symconv.ops.geometry.Blocks` (one ``conv`` each,
  as planned by :func:`~keras_symconv.ops.plan.plan`) and reads the map
  from them with one ``take`` (:func:`triangular_conv`); autodiff halves
  the backward pass the same way. Small maps are convolved whole;
- ``layout="upper"`` maps are expanded to the full map for the blocks'
  input; the output is read from the blocks directly;
- on PyTorch the blocks (both layouts) and the whole-map convolutions are
  the functions of :mod:`keras_symconv.ops.torch_blocks` instead: the same
  blocks, each written in place, with the gradient written out, and the
  upper layout computed without a full map;
- the fused generating convolution is one 1D convolution of the sequence
  and a contraction over the kernel's columns (as on TensorFlow), with
  ``strides=1``; strided, it goes through the self-Cartesian product.

Shapes are static here (JAX traces with concrete shapes; PyTorch runs
eagerly).
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import ops

from keras_symconv._validation import integer
from keras_symconv.ops import slots
from keras_symconv.ops.geometry import Blocks, conv_padding
from keras_symconv.ops.plan import Rules, plan

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
    "triangular_conv",
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
    if _TORCH_BLOCKS and len(x.shape) == 4:
        from keras_symconv.ops import torch_blocks

        y = torch_blocks.conv(x, kernel, strides, dilation, padding)
    else:
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


#: The blocks' plan per backend (:class:`~keras_symconv.ops.plan.Rules`),
#: chosen from side-by-side timings against ``Conv2D`` and the RNA CNN
#: (``benchmarks/RESULTS.md``, every backend): XLA on the CPU gains from
#: shorter strips than PyTorch does.
RULES = {
    "jax": Rules(strip_height=32, max_strips=8, max_splits=2),
    "torch": Rules(strip_height=64, max_strips=8, max_splits=2),
}


#: XLA on the CPU runs a ``valid`` convolution several times slower than a
#: ``same`` one of the same output (``benchmarks/RESULTS.md``, every
#: backend), so on JAX each block is a ``same`` convolution of its window,
#: cropped: the halo's few extra outputs cost less.
_SAME_THEN_CROP = keras.backend.backend() == "jax"
#: On PyTorch the blocks (both layouts) are autograd functions that write
#: each block in place, and whole-map convolutions run on channels-last
#: views (:mod:`keras_symconv.ops.torch_blocks`): the pads,
#: concatenations and selection below, autodiff's undoing of them and
#: ``keras.ops.conv``'s layout copies cost a PyTorch training step a good
#: part of what the blocks save (``benchmarks/RESULTS.md``, every backend).
_TORCH_BLOCKS = keras.backend.backend() == "torch"


def _blocks_plan(side, kernel, spec):
    """``(strips, splits)`` for the blocks of an input side, or ``None`` for the whole map."""
    if spec.strides != 1 or side is None:
        return None
    side = int(side) - (0 if spec.padding == "same" else spec.dilation * (spec.kernel_size - 1))
    channels, filters = int(kernel.shape[2]), int(kernel.shape[3])
    work = side**2 * spec.kernel_size**2 * channels * filters
    rules = RULES.get(keras.backend.backend(), Rules())
    # Both layouts go through the full map here: the full layout's plan.
    return plan(side, spec.kernel_size, spec.dilation, "full", spec.compute, work, rules)


@functools.lru_cache(maxsize=64)
def _block_index(side, strips, splits):
    """Where each of the upper layout's ``L (L + 1) / 2`` entries is in the
    concatenated blocks (NumPy int32)."""
    blocks = Blocks(side, strips, splits)
    at = np.full((side, side), -1, np.int64)
    offset = 0
    for k in range(len(blocks)):
        r0, r1, c0, c1 = (int(v) for v in blocks.bounds(k))
        h, w = r1 - r0, c1 - c0
        rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        keep = rows <= cols
        at[rows[keep], cols[keep]] = offset + (np.arange(h * w).reshape(h, w))[keep]
        offset += h * w
    rows, cols = np.triu_indices(side)
    assert (at[rows, cols] >= 0).all(), "the blocks leave an upper entry out"
    return at[rows, cols].astype(np.int32)


@functools.lru_cache(maxsize=64)
def _upper_mask(side):
    return np.triu(np.ones((side, side), bool))[None, :, :, None]


def _windows(padded, blocks, halo):
    """Each block's input window: its rows and columns of ``padded`` plus ``halo``."""
    return [
        padded[:, r0 : r1 + halo, c0 : c1 + halo, :]
        for r0, r1, c0, c1 in ((int(v) for v in blocks.bounds(k)) for k in range(len(blocks)))
    ]


def triangular_conv(x, kernel, bias, spec, strips, splits, layout="full"):
    """The entries on and above the diagonal of a symmetric convolution, in blocks.

    ``x``: a symmetric full map ``(B, L, L, m)``; ``kernel``: ``(C, C, m, F)``
    with ``kernel[a, b] == kernel[b, a]``; ``spec.strides`` must be 1. Each
    block of ``Blocks(L', strips, splits)`` is one ``valid`` convolution of
    the rows and columns it reads (from the map padded once).

    ``layout="full"``: the blocks are laid side by side (pads and
    concatenations, no gather) into a map right on and above the diagonal,
    and the entries below it are read from its transpose: bitwise symmetric.
    ``layout="upper"``: one ``take`` reads the upper triangle
    ``(B, L' (L' + 1) / 2, F)`` from the concatenated blocks.

    The result equals the full convolution's (on symmetric ``x``); the input
    gradient's symmetric part equals the full one's, which is all that
    reaches a symmetric network's weights.
    """
    if _TORCH_BLOCKS and layout == "full":
        from keras_symconv.ops import torch_blocks

        out = torch_blocks.triangular_conv(x, kernel, spec, strips, splits)
        return out if bias is None else out + bias
    effective, before, after = conv_padding(spec.kernel_size, spec.dilation, spec.padding)
    side = int(x.shape[1]) + before + after - effective + 1
    padded = x
    if before or after:
        padded = ops.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
    blocks = Blocks(side, strips, splits)
    outputs = []
    for k, window in enumerate(_windows(padded, blocks, effective - 1)):
        r0, r1, c0, c1 = (int(v) for v in blocks.bounds(k))
        if _SAME_THEN_CROP:
            y = ops.conv(window, kernel, padding="same", dilation_rate=spec.dilation)
            lead = (effective - 1) // 2
            y = y[:, lead : lead + r1 - r0, lead : lead + c1 - c0, :]
        else:
            y = ops.conv(window, kernel, padding="valid", dilation_rate=spec.dilation)
        outputs.append(y)
    if layout == "upper":
        batch, filters = ops.shape(x)[0], int(kernel.shape[-1])
        flat = ops.concatenate([ops.reshape(y, (batch, -1, filters)) for y in outputs], axis=1)
        out = ops.take(flat, _block_index(side, strips, splits), axis=1)
        return out if bias is None else out + bias
    rows = []
    k = 0
    for strip in range(strips):
        top = int(blocks.r0[k])
        parts = []
        while k < len(blocks) and int(blocks.strip[k]) == strip:
            r0, _, c0, _ = (int(v) for v in blocks.bounds(k))
            if blocks.piece[k]:  # a diagonal piece: zeros left of its first column
                parts.append(ops.pad(outputs[k], ((0, 0), (0, 0), (c0 - top, 0), (0, 0))))
            else:
                rect = outputs[k]
            k += 1
        diagonal = ops.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        row = diagonal if strip == strips - 1 else ops.concatenate([diagonal, rect], axis=2)
        rows.append(ops.pad(row, ((0, 0), (0, 0), (top, 0), (0, 0))) if top else row)
    upper = ops.concatenate(rows, axis=1)
    out = ops.where(_upper_mask(side), upper, ops.transpose(upper, (0, 2, 1, 3)))
    return out if bias is None else out + bias


def preserving_conv(x, kernel, bias, spec, rules=None):
    """A symmetry-preserving convolution (a :class:`~keras_symconv.ops.geometry.Spec`):
    in the blocks of :func:`triangular_conv` where :func:`~keras_symconv.ops.plan.plan`
    says so with this backend's :data:`RULES`, else over the whole map.

    ``rules``: the TensorFlow planner's (the layer's constants), not used here.
    """
    upper = spec.layout == "upper"
    side = side_of(int(x.shape[1])) if upper else x.shape[1]
    found = _blocks_plan(side, kernel, spec)
    if _TORCH_BLOCKS and upper and found is not None:
        from keras_symconv.ops import torch_blocks

        out = torch_blocks.upper_conv(x, kernel, spec, *found)
        return out if bias is None else out + bias
    if upper:
        x = from_upper(x)
    if found is not None:
        return triangular_conv(x, kernel, bias, spec, *found, layout=spec.layout)
    y = conv(x, kernel, bias, spec.strides, spec.dilation, spec.padding)
    return to_upper(y) if spec.layout == "upper" else y


def fused_generating_conv(x, half, bias, strides, dilation, padding, layout="full"):
    """What :func:`keras_symconv.ops.generating.fused_generating_conv` computes.

    ``Z[s, t] = T[s, t] + T[t, s]`` with ``T[s, t] = sum_b V[s, b] m(t, b)``:
    ``V`` one 1D convolution of the sequence with the half kernel's columns,
    ``m`` the 0/1 in-bounds mask of the padded positions (see that module).
    Strided, through the self-Cartesian product and the kernel ``[S, S]``.
    """
    c, _, n, filters = (int(d) for d in half.shape)
    length = x.shape[1]
    if strides != 1 or length is None:
        kernel = ops.concatenate([half, half], axis=2)
        y = conv(self_cartesian(x), kernel, bias, strides, dilation, padding)
        return to_upper(y) if layout == "upper" else y
    # (a, b, k, f) -> (a, k, b, f) -> a 1D kernel (a, k, b * F)
    kernel_1d = ops.reshape(ops.transpose(half, (0, 2, 1, 3)), (c, n, c * filters))
    v = ops.conv(x, kernel_1d, padding=padding, dilation_rate=dilation)
    batch, out_len = ops.shape(v)[0], int(v.shape[1])
    v = ops.reshape(v, (batch, out_len, c, filters))
    _, before, _ = conv_padding(c, dilation, padding)
    position = np.arange(out_len)[:, None] + np.arange(c)[None, :] * dilation - before
    mask = ((position >= 0) & (position < int(length))).astype(np.float32)
    t = ops.einsum("bscf,tc->bstf", v, ops.cast(mask, v.dtype))
    z = t + ops.transpose(t, (0, 2, 1, 3))
    if bias is not None:
        z = z + bias
    return to_upper(z) if layout == "upper" else z


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
