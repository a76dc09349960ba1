"""The symmetry-preserving convolution's blocks on PyTorch, gradient written out.

What :func:`keras_symconv.ops.portable.triangular_conv` computes, as
``torch.autograd.Function`` s. Each block of
:class:`~keras_symconv.ops.geometry.Blocks` is one ``conv2d`` of its window
of the input (only the blocks on the map's border pad, and only their own
window), written into the output in place:

- full layout (:func:`triangular_conv`): at the block's place and,
  transposed, at its mirror image (a diagonal piece's own square through a
  triangular mask, so the map is bitwise symmetric). The ``keras.ops``
  version pads, concatenates and selects whole maps, and autodiff undoes
  each of those in the backward pass;
- upper layout (:func:`upper_conv`): each window is gathered from the
  upper-triangle entries (below the diagonal, from the mirror image) and
  the block's outputs on and above the diagonal are written to theirs, so
  no full map is ever made: the maps between layers, their batch norms and
  activations are half the size.

The gradient, with ``g`` the incoming gradient: in the full layout each
block's outputs are read by the output at ``(r, c)`` and at ``(c, r)``, so
the block receives ``g[r, c] + g[c, r]`` above the diagonal, ``g[r, r]`` on
it and nothing below it (a diagonal piece's entries below the diagonal are
not read); in the upper layout, ``g`` at its entries and nothing below the
diagonal. With that, each block's input and kernel gradients are one
``convolution_backward``; the input gradients are added back where the
windows were read from (the windows overlap by the kernel's halo; in the
upper layout an entry is read for itself and for its mirror image). These
are the gradients autodiff gives for the ``keras.ops`` version (tested in
``tests/test_backends.py``).

:func:`conv` is the whole map's convolution, as ``keras.ops.conv`` but
reading and writing the channels-last maps in place (``keras.ops.conv``
copies its input to channels-first and back to channels-last memory).

Imported only under the PyTorch backend.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as tnn

from keras_symconv.ops import portable
from keras_symconv.ops.geometry import Blocks, conv_padding, effective_size

__all__ = ["conv", "triangular_conv", "upper_conv"]


@functools.lru_cache(maxsize=64)
def _blocks(side, strips, splits, halo, before, length):
    """Each block as ``(r0, r1, c0, c1, piece, rows, cols, pads)``, Python ints.

    ``[r0, r1) x [c0, c1)``: its output entries; ``rows``, ``cols``: the
    slices of the unpadded input (side ``length``, padded by ``before``
    entries first) its window reads; ``pads``: the zeros around them
    (``torch.nn.functional.pad`` order: left, right, top, bottom), so that
    only the blocks on the map's border pad, and only their own window.
    """
    blocks = Blocks(side, strips, splits)
    out = []
    for k in range(len(blocks)):
        r0, r1, c0, c1 = (int(v) for v in blocks.bounds(k))
        top, bottom = r0 - before, r1 + halo - before
        left, right = c0 - before, c1 + halo - before
        rows = slice(max(top, 0), min(bottom, length))
        cols = slice(max(left, 0), min(right, length))
        pads = (max(-left, 0), max(right - length, 0), max(-top, 0), max(bottom - length, 0))
        out.append((r0, r1, c0, c1, bool(blocks.piece[k]), rows, cols, pads))
    return tuple(out)


def _window(x, rows, cols, pads):
    window = x[:, :, rows, cols]
    return tnn.pad(window, pads) if any(pads) else window


def _window_grads(g_block, window, weight, pads, dilation, needs):
    """``(gradient of the window's in-map part or None, kernel gradient or None)``
    of a ``valid`` convolution of ``window`` (padded by ``pads``) receiving
    ``g_block``; ``needs``: which of the two to compute."""
    g_window, g_weight, _ = torch.ops.aten.convolution_backward(
        g_block,
        window,
        weight,
        None,
        (1, 1),
        (0, 0),
        (dilation, dilation),
        False,
        (0, 0),
        1,
        (*needs, False),
    )
    if g_window is not None:
        left, right, top, bottom = pads
        height, width = g_window.shape[2:]
        g_window = g_window[:, :, top : height - bottom, left : width - right]
    return g_window, g_weight


def _upper(side, device):
    """``(side, side)`` bool: on and above the diagonal."""
    return torch.ones((side, side), dtype=torch.bool, device=device).triu()


def _piece_weights(height, width, device, dtype):
    """``(height, width)``: 1 above the diagonal, 1/2 on it, 0 below (see the
    module's docstring: the diagonal's ``g[r, r] + g[r, r]`` halved)."""
    ones = torch.ones((height, width), dtype=dtype, device=device)
    return 0.5 * (ones.triu() + ones.triu(1))


class _TriangularConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, kernel, side, strips, splits, dilation, before, halo):
        inputs = inputs.contiguous()
        x = inputs.permute(0, 3, 1, 2)  # NCHW view of channels-last storage
        weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        batch, filters = inputs.shape[0], kernel.shape[-1]
        storage = inputs.new_empty((batch, side, side, filters))
        out = storage.permute(0, 3, 1, 2)
        plan = (side, strips, splits, halo, before, int(inputs.shape[1]))
        for r0, r1, c0, c1, piece, rows, cols, pads in _blocks(*plan):
            y = tnn.conv2d(_window(x, rows, cols, pads), weight, dilation=dilation)
            if piece:  # columns [r0, r1) are the piece's own square, then a rectangle
                square = y[:, :, :, : r1 - r0]
                upper = _upper(r1 - r0, y.device)
                out[:, :, r0:r1, r0:r1] = torch.where(upper, square, square.transpose(2, 3))
                y, c0 = y[:, :, :, r1 - r0 :], r1
            if c1 > c0:
                out[:, :, r0:r1, c0:c1] = y
                out[:, :, c0:c1, r0:r1] = y.transpose(2, 3)
        ctx.save_for_backward(inputs, weight)
        ctx.plan, ctx.dilation = plan, dilation
        return storage

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        inputs, weight = ctx.saved_tensors
        need_input, need_kernel = ctx.needs_input_grad[:2]
        g = grad.contiguous().permute(0, 3, 1, 2)
        x = inputs.permute(0, 3, 1, 2)
        grad_storage = torch.zeros_like(inputs) if need_input else None
        grad_x = grad_storage.permute(0, 3, 1, 2) if need_input else None
        grad_weight = None
        for r0, r1, c0, c1, piece, rows, cols, pads in _blocks(*ctx.plan):
            g_block = g[:, :, r0:r1, c0:c1] + g[:, :, c0:c1, r0:r1].transpose(2, 3)
            if piece:
                g_block = g_block * _piece_weights(r1 - r0, c1 - c0, g.device, g.dtype)
            g_window, g_weight = _window_grads(
                g_block.contiguous(memory_format=torch.channels_last),
                _window(x, rows, cols, pads),
                weight,
                pads,
                ctx.dilation,
                (need_input, need_kernel),
            )
            if need_input:
                grad_x[:, :, rows, cols] += g_window
            if need_kernel:
                grad_weight = g_weight if grad_weight is None else grad_weight + g_weight
        grad_kernel = grad_weight.permute(2, 3, 1, 0) if need_kernel else None
        return grad_storage, grad_kernel, None, None, None, None, None, None


def triangular_conv(x, kernel, spec, strips, splits):
    """The full ``(B, L', L', F)`` map of a symmetric convolution with stride 1.

    ``x``: the symmetric input ``(B, L, L, m)``; ``kernel``: ``(C, C, m, F)``,
    symmetric in its first two axes; ``spec``: a
    :class:`~keras_symconv.ops.geometry.Spec` (its padding and dilation);
    ``(strips, splits)``: the blocks.
    """
    effective, before, _ = conv_padding(spec.kernel_size, spec.dilation, spec.padding)
    side = spec.output_side(int(x.shape[1]))
    return _TriangularConv.apply(
        x, kernel, side, strips, splits, spec.dilation, before, effective - 1
    )


@functools.lru_cache(maxsize=256)
def _upper_blocks(side, strips, splits, halo, before, length, device):
    """:func:`_blocks` with the upper layout's indices, as ``torch`` tensors on ``device``.

    Each block: ``(r0, r1, c0, c1, piece, pads, reads, writes, keep)``:
    ``reads``, the input entries of its window's in-map part (row-major,
    entries below the diagonal read from their mirror image); ``writes``,
    the output entries it holds on and above the diagonal; ``keep``, where
    those are among its ``h w`` outputs (``None`` for a rectangle: all).
    """
    # Each entry's upper-layout index (below the diagonal: its mirror image's).
    entry_in = portable._upper_indices(length)[1].reshape(length, length)
    entry_out = portable._upper_indices(side)[1].reshape(side, side)
    out = []
    for r0, r1, c0, c1, piece, rows, cols, pads in _blocks(
        side, strips, splits, halo, before, length
    ):
        reads = entry_in[rows, cols].ravel()
        keep = np.flatnonzero(np.triu(np.ones((r1 - r0, c1 - c0), bool), r0 - c0))
        writes = entry_out[r0:r1, c0:c1].ravel()[keep]
        tensors = [
            torch.as_tensor(a.astype(np.int64), device=device) for a in (reads, writes, keep)
        ]
        if not piece:
            tensors[2] = None
        out.append(
            (
                r0,
                r1,
                c0,
                c1,
                piece,
                pads,
                *tensors,
                (rows.stop - rows.start, cols.stop - cols.start),
            )
        )
    return tuple(out)


class _UpperConv(torch.autograd.Function):
    """:class:`_TriangularConv` in the upper layout: ``(B, N, m)`` in, ``(B, N', F)`` out.

    Each block's window is gathered from the input's entries (its mirror
    image below the diagonal) and its outputs on and above the diagonal are
    written to theirs: no full map is made. Gradient: the block's outputs
    receive ``g`` at their entries (0 below the diagonal); the windows'
    gradients are added back to the entries they were read from.
    """

    @staticmethod
    def forward(ctx, inputs, kernel, side, strips, splits, dilation, before, halo, length):
        inputs = inputs.contiguous()
        weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        batch, channels, filters = inputs.shape[0], inputs.shape[2], kernel.shape[-1]
        out = inputs.new_empty((batch, side * (side + 1) // 2, filters))
        plan = (side, strips, splits, halo, before, length, inputs.device)
        for r0, r1, c0, c1, _, pads, reads, writes, keep, shape in _upper_blocks(*plan):
            window = inputs.index_select(1, reads).view(batch, *shape, channels)
            window = window.permute(0, 3, 1, 2)
            y = tnn.conv2d(
                tnn.pad(window, pads) if any(pads) else window, weight, dilation=dilation
            )
            y = y.permute(0, 2, 3, 1).reshape(batch, (r1 - r0) * (c1 - c0), filters)
            out.index_copy_(1, writes, y if keep is None else y.index_select(1, keep))
        ctx.save_for_backward(inputs, weight)
        ctx.plan, ctx.dilation = plan, dilation
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        inputs, weight = ctx.saved_tensors
        need_input, need_kernel = ctx.needs_input_grad[:2]
        grad = grad.contiguous()
        batch, channels, filters = inputs.shape[0], inputs.shape[2], grad.shape[2]
        grad_inputs = torch.zeros_like(inputs) if need_input else None
        grad_weight = None
        for r0, r1, c0, c1, _, pads, reads, writes, keep, shape in _upper_blocks(*ctx.plan):
            g_block = grad.index_select(1, writes)
            if keep is not None:  # a diagonal piece: nothing reaches its entries below
                g_block = grad.new_zeros((batch, (r1 - r0) * (c1 - c0), filters)).index_copy_(
                    1, keep, g_block
                )
            g_block = g_block.view(batch, r1 - r0, c1 - c0, filters).permute(0, 3, 1, 2)
            window = inputs.index_select(1, reads).view(batch, *shape, channels)
            window = window.permute(0, 3, 1, 2)
            g_window, g_weight = _window_grads(
                g_block,
                tnn.pad(window, pads) if any(pads) else window,
                weight,
                pads,
                ctx.dilation,
                (need_input, need_kernel),
            )
            if need_input:
                g_window = g_window.permute(0, 2, 3, 1).reshape(batch, -1, channels)
                grad_inputs.index_add_(1, reads, g_window)
            if need_kernel:
                grad_weight = g_weight if grad_weight is None else grad_weight + g_weight
        grad_kernel = grad_weight.permute(2, 3, 1, 0) if need_kernel else None
        return (grad_inputs, grad_kernel) + (None,) * 7


def upper_conv(x, kernel, spec, strips, splits):
    """:func:`triangular_conv` in the upper layout: ``x`` ``(B, L (L + 1) / 2, m)``,
    the output ``(B, L' (L' + 1) / 2, F)``."""
    length = portable.side_of(int(x.shape[1]))
    effective, before, _ = conv_padding(spec.kernel_size, spec.dilation, spec.padding)
    side = spec.output_side(length)
    return _UpperConv.apply(
        x, kernel, side, strips, splits, spec.dilation, before, effective - 1, length
    )


def conv(x, kernel, strides=1, dilation=1, padding="same"):
    """``keras.ops.conv(x, kernel, strides, padding, dilation_rate=dilation)``
    for a ``(B, H, W, m)`` map and a ``(C, C, m, F)`` kernel, on channels-last
    views (``padding="same"`` as TensorFlow pads: the extra entry after)."""
    x = x.contiguous()
    weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    pads = (0, 0)
    if padding == "same":
        span = effective_size(int(kernel.shape[0]), dilation)
        before_after = []
        for length in x.shape[1:3]:
            total = max((-(-length // strides) - 1) * strides + span - length, 0)
            before_after.append((total // 2, total - total // 2))
        if all(before == after for before, after in before_after):
            pads = tuple(before for before, _ in before_after)
        else:
            (top, bottom), (left, right) = before_after
            x = tnn.pad(x, (0, 0, left, right, top, bottom))
    y = tnn.conv2d(x.permute(0, 3, 1, 2), weight, stride=strides, padding=pads, dilation=dilation)
    return y.permute(0, 2, 3, 1)
