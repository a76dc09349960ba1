"""Which compute a symmetry-preserving convolution uses, and its blocks.

One planner for both layouts: :func:`plan` gives the ``(strips, splits)``
of :class:`~keras_symconv.ops.geometry.Blocks` for an output side, or
``None`` for the full ``conv2d``. The thresholds are :class:`Rules`, set
from measurements (``benchmarks/RESULTS.md``, triangular compute and upper
layout sections).
"""

from __future__ import annotations

import dataclasses

from keras_symconv.ops.geometry import effective_size, min_side

__all__ = ["Rules", "plan"]


@dataclasses.dataclass(frozen=True)
class Rules:
    """Thresholds of :func:`plan`.

    Attributes:
        min_side: output side from which ``compute="auto"`` goes triangular
            (full layout).
        min_work: least multiply-adds of the full convolution of one map,
            ``L'^2 C^2 m F``, at which ``compute="auto"`` goes triangular:
            below it the strips' fixed costs eat the saving.
        strip_height: target strip height (rows).
        max_strips: most strips (full layout).
        max_splits: most pieces of each strip's diagonal block.
        dynamic: ``(strips, splits)`` of ``compute="triangular"`` when the
            side is unknown while the graph is built (full layout): few
            blocks, since both branches of the run-time choice are built,
            with their gradients.
        upper_max_strips: most strips in the upper layout: more, shorter
            strips keep each block's input window small.
        upper_dynamic: ``(strips, splits)`` in the upper layout when the side
            is unknown while the graph is built (one graph, any side).
    """

    min_side: int = 128
    min_work: float = 2e8
    strip_height: int = 64
    max_strips: int = 8
    max_splits: int = 4
    dynamic: tuple = (4, 1)
    upper_max_strips: int = 16
    upper_dynamic: tuple = (4, 2)


def plan(side, kernel_size, dilation, layout="full", compute="auto", work=None, rules=Rules()):
    """``(strips, splits)`` for an output side, or ``None`` for the full ``conv2d``.

    Args:
        side: the output side ``L'``, or ``None`` when it is unknown while the
            graph is built.
        kernel_size, dilation: the convolution's.
        layout: ``"full"`` or ``"upper"``.
        compute: ``"auto"``, ``"triangular"`` or ``"full"``.
        work: multiply-adds of the full convolution of one map, for
            ``compute="auto"``'s threshold (not checked when ``None``).
        rules: :class:`Rules`.

    Full layout: ``None`` for ``compute="full"``; for ``"auto"`` below
    ``rules.min_side`` or ``rules.min_work`` or with an unknown side; else
    about one strip per ``strip_height`` rows (2 to ``max_strips``), cutting
    diagonal pieces first and then strips until every block is at least the
    kernel's span high (:func:`~keras_symconv.ops.geometry.min_side`), ``None``
    when even two strips do not fit. ``rules.dynamic`` for
    ``"triangular"`` with an unknown side (the caller chooses at run time).

    Upper layout: ``None`` only for ``compute="full"``; else about one strip
    per ``strip_height`` rows (1 to ``upper_max_strips``), each diagonal block
    cut into up to ``max_splits`` pieces at least the kernel's span (and 8
    rows) high; any side works (blocks may be empty).
    """
    if compute == "full":
        return None
    if layout == "upper":
        if side is None:
            return tuple(rules.upper_dynamic)
        strips = min(rules.upper_max_strips, max(1, round(side / rules.strip_height)))
        span = max(effective_size(kernel_size, dilation), 8)
        return strips, max(1, min(rules.max_splits, (side // strips) // span))
    if side is None:
        return tuple(rules.dynamic) if compute == "triangular" else None
    if compute == "auto" and (
        side < rules.min_side or (work is not None and work < rules.min_work)
    ):
        return None

    def fits(strips, splits):
        return side >= min_side(kernel_size, dilation, strips, splits)

    strips = min(rules.max_strips, max(2, round(side / rules.strip_height)))
    splits = rules.max_splits
    while splits > 1 and not fits(strips, splits):
        splits -= 1
    while strips > 2 and not fits(strips, splits):
        strips -= 1
    return (strips, splits) if fits(strips, splits) else None
