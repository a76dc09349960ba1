"""What training a pair-map model needs beyond ``fit``: the output's start and the threshold.

- :func:`prior_logit`: the initial output logit that makes every model start
  at the best constant prediction for the weighted loss.
- :func:`choose_threshold`: the decoding threshold chosen on validation
  maps, from the grid :data:`THRESHOLDS`.
- :func:`write_decoding` / :func:`read_decoding`: that threshold (and how it
  was chosen) stored inside the ``.keras`` file, where ``symconv`` finds it.

The command-line tool and the reproduction scripts in ``benchmarks/`` use
these functions, so a model trained either way starts and decodes the same.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np

__all__ = [
    "THRESHOLDS",
    "DECODING_MEMBER",
    "prior_logit",
    "choose_threshold",
    "write_decoding",
    "read_decoding",
]

#: Decoding thresholds tried on the validation set: 0.10, 0.15, ..., 0.90.
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(2, 19))

#: Name of the JSON member that :func:`write_decoding` adds to a ``.keras`` file.
DECODING_MEMBER = "keras_symconv_decoding.json"


def prior_logit(dataset, positive_weight):
    """Initial output logit: the best constant prediction for the weighted loss.

    Counts the native pairs among the valid strict-upper-triangle positions
    of one pass of ``dataset`` (``(x, y)`` batches, ``y`` ``(b, L, L, 1)``
    with negative labels ignored) as the loss does: rate ``r``. A constant
    ``p`` minimizes ``w r (-log p) + (1 - r)(-log(1 - p))`` at
    ``p / (1 - p) = w r / (1 - r)``; its log is returned, rounded to 6
    decimals.

    Why: with batch norm before the output sigmoid and the output starting
    at logit 0, a plain CNN lowers the upper triangle (inside the loss) by
    raising the lower one (outside it), while a symmetric map cannot and
    waits for the batch norm's offset to drift. Starting every model at the
    prior removes that head start (``benchmarks/RESULTS.md``, RNA section).

    Args:
        dataset: an iterable of ``(x, y)`` NumPy batches, or a
            ``tf.data.Dataset`` of them.
        positive_weight: the loss's weight of native pairs.

    Raises:
        ValueError: when the crops hold no pair, or nothing but pairs.
    """
    if hasattr(dataset, "as_numpy_iterator"):
        dataset = dataset.as_numpy_iterator()
    positives = total = 0.0
    for batch in dataset:
        y = np.asarray(batch[1])[..., 0]
        upper = np.triu(np.ones(y.shape[1:], bool), 1)[None]
        valid = upper & (y >= 0)
        positives += float(np.sum((y > 0.5) & valid))
        total += float(np.sum(valid))
    if positives == 0 or positives == total:
        raise ValueError(
            "The training crops have no pair (or only pairs): no prior logit. "
            f"Received {positives:.0f} pairs among {total:.0f} positions."
        )
    rate = positives / total
    return round(float(np.log(positive_weight * rate / (1 - rate))), 6)


def choose_threshold(score, thresholds=THRESHOLDS, key="accuracy"):
    """The threshold of ``thresholds`` with the highest ``score(t)[key]``.

    Args:
        score: ``threshold -> dict`` of figures (e.g. a
            :func:`keras_symconv.metrics.pair_metrics` call on validation
            maps).
        thresholds: the grid (default :data:`THRESHOLDS`). Ties go to the
            lowest threshold.
        key: the figure to maximize.

    Returns:
        ``(threshold, {threshold: figures})``.
    """
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("Argument `thresholds` must not be empty.")
    figures = {t: score(t) for t in thresholds}
    best = max(thresholds, key=lambda t: (figures[t][key], -t))
    return best, figures


def write_decoding(path, threshold, **info):
    """Store the decoding threshold (and ``info``) inside the ``.keras`` file ``path``.

    The file stays a valid Keras archive: Keras reads only the members it
    wrote. :func:`read_decoding` reads it back; a later ``model.save`` to
    the same path drops it (write it again after saving).
    """
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"Argument `threshold` must be in [0, 1). Received: threshold={threshold}")
    payload = json.dumps({"threshold": threshold, **info}, indent=1, default=float)
    with zipfile.ZipFile(path) as archive:
        if DECODING_MEMBER in archive.namelist():
            members = {n: archive.read(n) for n in archive.namelist() if n != DECODING_MEMBER}
        else:
            members = None
    if members is not None:  # rewrite without the old member
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(DECODING_MEMBER, payload)


def read_decoding(path):
    """The dict stored by :func:`write_decoding` in ``path``, or None if there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            if DECODING_MEMBER not in archive.namelist():
                return None
            return json.loads(archive.read(DECODING_MEMBER))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a .keras archive ({exc})") from exc
