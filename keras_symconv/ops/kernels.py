"""Kernel algebra of symmetry-structured convolutions (pure functions).

Notation (Maduranga, Zadorozhnyy & Ye, "Symmetry Structured Convolutional
Neural Networks"): a square kernel of spatial size ``C``; ``P = C (C + 1) / 2``
packed spatial slots, one for each position ``(a, b)`` with ``a >= b``.

*Symmetry preserving kernel* ``Q`` of shape ``(C, C, m, F)`` with
``Q[a, b] == Q[b, a]``, stored packed as ``R`` of shape ``(P, m, F)``.

*Symmetry generating kernel* ``W`` of shape ``(C, C, 2n, F)`` with
``W[a, b] == W[b, a]`` and ``W[a, b, k] == W[a, b, k + n]``, stored packed as
``S`` of shape ``(P, n, F)``.

Expansion is a gather from a constant index map ``idx`` of shape ``(C * C,)``
that sends the flattened position ``a * C + b`` to its packed slot. The
gradient of a packed weight is the sum of the kernel gradient over every entry
that weight fills (the paper's update rules, eqs. 3 and 5)::

    dR = unsorted_segment_sum(dQ, idx, P)                       # eq. 5
    dS = unsorted_segment_sum(dW[..., :n, :] + dW[..., n:, :], idx, P)  # eq. 3

:func:`make_kernel_expander` returns the expansion with exactly this rule as
its explicit custom gradient. Nothing here depends on Keras layers.
"""

from __future__ import annotations

import tensorflow as tf

from keras_symconv._validation import integer
from keras_symconv.ops import slots
from keras_symconv.ops.slots import (  # noqa: F401  (re-exported with the kernel algebra)
    full_kernel_shape,
    num_conv2d_kernel_params,
    num_kernel_params,
    packed_kernel_shape,
    packed_size,
    packed_slot,
    representative_positions,
    symmetric_index_map,
)

__all__ = [
    *slots.__all__,
    "expand_kernel",
    "make_kernel_expander",
    "packed_kernel_gradient",
    "pack_kernel",
]


def _flat_full(packed, idx, generating):
    # (P, ch, F) -> (C*C, ch or 2ch, F)
    full = tf.gather(packed, idx, axis=0)
    if generating:
        full = tf.concat([full, full], axis=1)
    return full


def expand_kernel(packed, kernel_size, generating):
    """Expand a packed kernel to the full ``(C, C, channels, F)`` kernel.

    Plain gather, differentiated by autodiff. Layers use
    :func:`make_kernel_expander` instead, whose gradient is the paper's rule
    written out.
    """
    expander = make_kernel_expander(kernel_size, generating)
    return expander(tf.convert_to_tensor(packed))


def packed_kernel_gradient(full_grad, idx, num_slots, generating):
    """The paper's update rule: gradient of the packed kernel.

    Args:
        full_grad: gradient w.r.t. the full kernel, shape ``(C*C, ch, F)``
            (flattened spatial positions) or ``(C, C, ch, F)``.
        idx: index map from :func:`symmetric_index_map`.
        num_slots: ``C(C+1)/2``.
        generating: sum the two channel halves first (eq. 3) when true,
            otherwise eq. 5.

    Returns:
        Tensor of shape ``(num_slots, ch or ch / 2, F)``.
    """
    full_grad = tf.convert_to_tensor(full_grad)
    grad = tf.reshape(full_grad, tf.concat([[-1], tf.shape(full_grad)[-2:]], axis=0))
    if generating:
        n = tf.shape(grad)[1] // 2
        grad = grad[:, :n] + grad[:, n:]
    return tf.math.unsorted_segment_sum(grad, idx, num_slots)


def make_kernel_expander(kernel_size, generating):
    """Build ``expand(packed) -> full kernel`` with the explicit update rule.

    The returned function takes one positional tensor of shape
    ``(C(C+1)/2, ch, F)`` (a tensor, not a variable: convert a variable with
    ``tf.convert_to_tensor`` first) and returns ``(C, C, ch or 2ch, F)``. Its
    gradient is computed by :func:`packed_kernel_gradient`, not by autodiff
    of the gather. Build it once (e.g. in a layer's ``build``) and call it
    in ``call``.
    """
    c = integer(kernel_size, "kernel_size")
    idx = symmetric_index_map(c)
    num_slots = packed_size(c)

    @tf.custom_gradient
    def expand(packed):
        flat = _flat_full(packed, idx, generating)
        full = tf.reshape(flat, tf.concat([[c, c], tf.shape(flat)[1:]], axis=0))

        def grad(upstream):
            return packed_kernel_gradient(upstream, idx, num_slots, generating)

        return full, grad

    return expand


def pack_kernel(full, generating):
    """Pack a full kernel ``(C, C, ch, F)`` by reading one entry per slot.

    No check that ``full`` has the symmetry: for a symmetric kernel,
    ``expand_kernel(pack_kernel(full)) == full``. For a generating kernel the
    first channel half is read.
    """
    full = tf.convert_to_tensor(full)
    c = int(full.shape[0])
    flat = tf.reshape(full, tf.concat([[c * c], tf.shape(full)[2:]], axis=0))
    packed = tf.gather(flat, representative_positions(c), axis=0)
    if generating:
        packed = packed[:, : tf.shape(packed)[1] // 2]
    return packed
