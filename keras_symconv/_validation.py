"""Argument checks shared by the layers, the kernel algebra and the builders.

Each normalises one argument and raises ``ValueError`` naming it and echoing
the value received (``TypeError`` for unknown keyword arguments, as Python
does).
"""

from __future__ import annotations

import numpy as np

__all__ = ["integer", "square", "padding", "choice", "overrides"]


def integer(value, name, minimum=1):
    """``value`` as an ``int`` of at least ``minimum`` (bools rejected)."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Argument `{name}` must be {wanted}. Received: {name}={value!r}")
    return int(value)


def square(value, name):
    """An int or a pair of equal ints (one per spatial axis) as one positive int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"Argument `{name}` must be an integer or a pair of equal "
                f"integers. Received: {name}={value!r}"
            )
        first, second = (integer(v, name) for v in value)
        if first != second:
            raise ValueError(
                f"Argument `{name}` must be the same on both spatial axes, "
                f"or the output is not symmetric. Received: {name}={value!r}"
            )
        return first
    return integer(value, name)


def padding(value):
    """``"same"`` or ``"valid"``, case-insensitive, as lower case."""
    if not isinstance(value, str) or value.lower() not in ("same", "valid"):
        raise ValueError(
            f"Argument `padding` must be 'same' or 'valid'. Received: padding={value!r}"
        )
    return value.lower()


def choice(value, name, options):
    """``value`` if it is one of ``options``."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}"
        raise ValueError(f"Argument `{name}` must be {listed}. Received: {name}={value!r}")
    return value


def overrides(defaults, given):
    """``defaults`` updated with ``given``; a ``TypeError`` names unknown keys."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"Unknown argument(s): {sorted(unknown)}; expected {sorted(defaults)}")
    return {**defaults, **given}
