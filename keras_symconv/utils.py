"""Debugging helpers for symmetric feature maps."""

from __future__ import annotations

import numpy as np

__all__ = ["asymmetry", "check_symmetric"]


def _as_array(x):
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def _swap(x, axes):
    a, b = axes
    return np.swapaxes(x, a, b)


def asymmetry(x, axes=(1, 2)):
    """Largest ``|x - x^T|`` over the two spatial ``axes`` (eager values).

    Args:
        x: array-like or eager tensor, e.g. ``(batch, L, L, channels)``.
        axes: the two spatial axes; ``(1, 2)`` for batched channels-last
            maps, ``(0, 1)`` for a single ``(L, L[, c])`` map.

    Returns:
        A Python float (0.0 for an empty map).
    """
    arr = _as_array(x)
    _check_axes(arr, axes)
    if arr.size == 0:
        return 0.0
    diff = np.abs(arr.astype(np.float64) - _swap(arr, axes).astype(np.float64))
    return float(diff.max())


def _check_axes(arr, axes):
    if len(axes) != 2:
        raise ValueError(f"Argument `axes` must name two axes. Received: axes={axes}")
    a, b = axes
    if max(a, b) >= arr.ndim or min(a, b) < -arr.ndim:
        raise ValueError(
            f"Argument `axes`={axes} is out of range for an array of rank "
            f"{arr.ndim} (shape {arr.shape})."
        )
    if arr.shape[a] != arr.shape[b]:
        raise ValueError(f"The map is not square on axes {axes}: shape {arr.shape}.")


def check_symmetric(x, atol=1e-5, rtol=1e-5, axes=(1, 2)):
    """Raise ``ValueError`` if ``x`` is not symmetric to tolerance.

    The test is ``|x - x^T| <= atol + rtol * |x^T|`` elementwise, as in
    ``numpy.allclose``.

    Returns:
        The largest asymmetry ``max |x - x^T|`` (a float) when the check
        passes.

    Raises:
        ValueError: naming the largest asymmetry and where it is.

    Example:

    >>> import numpy as np
    >>> check_symmetric(np.ones((1, 3, 3, 2)))
    0.0
    """
    arr = _as_array(x)
    _check_axes(arr, axes)
    if arr.size == 0:
        return 0.0
    arr64 = arr.astype(np.float64)
    swapped = _swap(arr64, axes)
    diff = np.abs(arr64 - swapped)
    excess = diff - (atol + rtol * np.abs(swapped))
    worst = float(diff.max())
    if not np.all(excess <= 0) or not np.all(np.isfinite(arr64)):
        where = np.unravel_index(int(np.nanargmax(excess)), arr.shape)
        raise ValueError(
            f"Map is not symmetric on axes {axes}: max |x - x^T| = {worst:.3g} "
            f"(first worst excess at index {tuple(int(i) for i in where)}; "
            f"atol={atol}, rtol={rtol})."
        )
    return worst
