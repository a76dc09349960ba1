"""The paper's metrics for pair maps (section IV-B).

Predicted pairs are *decoded* from the upper triangle of a probability map:
repeatedly take the highest remaining probability above the threshold, keep
that pair, and clear what it rules out.

- ``strict=False`` (the authors' code, used for the paper's tables): clear
  row ``i`` and column ``j`` of the upper triangle only. A base may still
  pair twice, once as the ``j`` of one pair and once as the ``i`` of another.
- ``strict=True``: clear both bases' rows and columns, so every base pairs
  at most once.

Ties are broken by position: the first in row-major order of the upper
triangle wins (what a repeated ``argmax`` does).

Per sequence: ``PPV = TP / predicted pairs``, ``sensitivity = TP / native
pairs``, ``accuracy = (PPV + sensitivity) / 2``. With nothing predicted and
nothing native both are 1; with one side empty and the other not, the
undefined ratio counts as 0. Figures are averaged over sequences.

:class:`PairMetric` is the Keras metric for ``fit``: it scores the
*thresholded* upper triangle (every pair above the threshold, no decoding),
because decoding is a sequential loop with no graph/XLA form. It equals
the decoded figure whenever no base has two candidates above the threshold;
early in training, when many are, it is lower on PPV. Use
:func:`pair_metrics` (what ``symconv rna evaluate`` prints) for reported
numbers.

:func:`ranking_metrics` is the evaluation of sequential recommenders as
CosRec (and Caser before it) defines it: rank every item for each user,
drop the items seen in training, then MAP over the full ranking and
precision / recall at a cut-off.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_symconv._backend import import_tensorflow
from keras_symconv.losses import pair_mask

tf = import_tensorflow("keras_symconv.metrics")

__all__ = [
    "decode_pairs",
    "pair_scores",
    "pair_metrics",
    "PairMetric",
    "contact_precision",
    "ranking_metrics",
]

#: Sequence-separation ranges of the contact-prediction field (CASP).
CONTACT_RANGES = {"short": (6, 11), "medium": (12, 23), "long": (24, None)}


def decode_pairs(prob, threshold=0.5, strict=False):
    """Greedy decoding of one ``(L, L)`` map into 0-based pairs ``(i, j)``, i < j.

    Args:
        prob: ``(L, L)`` or ``(L, L, 1)`` probabilities (only ``i < j`` read).
        threshold: keep only probabilities strictly above it.
        strict: one pair per base (see the module docstring).

    Returns:
        List of pairs in the order they were taken (highest first).
    """
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim == 3 and prob.shape[-1] == 1:
        prob = prob[..., 0]
    if prob.ndim != 2 or prob.shape[0] != prob.shape[1]:
        raise ValueError(
            f"Argument `prob` must be a square (L, L) map. Received shape {prob.shape}"
        )
    rows, cols = np.triu_indices(prob.shape[0], k=1)  # row-major order
    values = prob[rows, cols]
    keep = values > threshold
    rows, cols, values = rows[keep], cols[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    used_rows, used_cols, pairs = set(), set(), []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if strict:
            if {i, j} & used_rows:
                continue
            used_rows.update((i, j))
        else:
            if i in used_rows or j in used_cols:
                continue
            used_rows.add(i)
            used_cols.add(j)
        pairs.append((i, j))
    return pairs


def pair_scores(native, predicted):
    """``(ppv, sensitivity, accuracy)`` of predicted pairs against native ones."""
    native = {tuple(sorted(p)) for p in native}
    predicted = {tuple(sorted(p)) for p in predicted}
    tp = len(native & predicted)
    if not predicted:
        ppv = 1.0 if not native else 0.0
    else:
        ppv = tp / len(predicted)
    if not native:
        sen = 1.0 if not predicted else 0.0
    else:
        sen = tp / len(native)
    return ppv, sen, (ppv + sen) / 2


def _native_pairs(true_map):
    true_map = np.asarray(true_map)
    if true_map.ndim == 3 and true_map.shape[-1] == 1:
        true_map = true_map[..., 0]
    i, j = np.nonzero(np.triu(true_map > 0.5, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def pair_metrics(y_true, y_prob, threshold=0.5, strict=False, lengths=None):
    """The paper's PPV, sensitivity and accuracy, per sequence and averaged.

    Args:
        y_true: native pair maps ``(batch, L, L[, 1])`` (or one ``(L, L)``),
            or a list of maps of different sizes. A single map must be 2D.
        y_prob: predicted probabilities, the same layout.
        threshold: decoding threshold (the paper: 0.5).
        strict: one pair per base when decoding (default: the authors' rule).
        lengths: optional true lengths, to drop padding from batched maps.

    Returns:
        ``{"ppv", "sensitivity", "accuracy"}`` averages over sequences and
        ``"per_sequence"``: a list of ``(ppv, sensitivity, accuracy)``.
    """
    if not isinstance(y_true, (list, tuple)):
        y_true = np.asarray(y_true)
        y_prob = np.asarray(y_prob)
        if y_true.ndim == 2:  # one (L, L) map
            y_true, y_prob = y_true[None], y_prob[None]
    if len(y_true) != len(y_prob):
        raise ValueError(f"{len(y_true)} native maps but {len(y_prob)} predicted maps")
    per_sequence = []
    for k, (t, p) in enumerate(zip(y_true, y_prob, strict=True)):
        t, p = np.asarray(t), np.asarray(p)
        if lengths is not None:
            n = int(lengths[k])
            t, p = t[:n, :n], p[:n, :n]
        per_sequence.append(pair_scores(_native_pairs(t), decode_pairs(p, threshold, strict)))
    if not per_sequence:
        raise ValueError("No sequences to score.")
    scores = np.array(per_sequence)
    return {
        "ppv": float(scores[:, 0].mean()),
        "sensitivity": float(scores[:, 1].mean()),
        "accuracy": float(scores[:, 2].mean()),
        "per_sequence": per_sequence,
    }


def contact_precision(contacts, prob, mask=None, ranges=("long", "medium"), fractions=(1, 2, 5)):
    """Precision of the top ``L/n`` predicted contacts per separation range.

    For each range (``CONTACT_RANGES``: long ``|i - j| >= 24``, medium
    12-23, short 6-11) the pairs ``i < j`` in that range whose residues are
    both unmasked are ranked by predicted probability (ties: first in
    row-major order); precision = true contacts among the top
    ``max(1, L // n)`` (fewer when the range has fewer pairs), ``L`` the
    chain length.

    Args:
        contacts: ``(L, L)`` 0/1 true contacts.
        prob: ``(L, L)`` predicted probabilities.
        mask: optional ``(L,)`` 1 for residues with coordinates.

    Returns:
        ``{"long_L": ..., "long_L/2": ..., "long_L/5": ..., "medium_L": ...}``;
        ``nan`` for a range with no pair.
    """
    contacts, prob = np.asarray(contacts), np.asarray(prob, np.float64)
    length = contacts.shape[0]
    mask = np.ones(length) if mask is None else np.asarray(mask)
    rows, cols = np.triu_indices(length, k=1)
    sep = cols - rows
    valid = (mask[rows] > 0) & (mask[cols] > 0)
    result = {}
    for name in ranges:
        lo, hi = CONTACT_RANGES[name]
        keep = valid & (sep >= lo) & (sep <= (hi if hi is not None else length))
        r, c = rows[keep], cols[keep]
        order = np.argsort(-prob[r, c], kind="stable")
        for n in fractions:
            label = f"{name}_L" if n == 1 else f"{name}_L/{n}"
            top = order[: max(1, length // n)]
            result[label] = float(contacts[r[top], c[top]].mean()) if len(top) else float("nan")
    return result


@keras.saving.register_keras_serializable(package="keras_symconv")
class PairMetric(keras.metrics.Metric):
    """Per-sequence PPV, sensitivity or accuracy of the thresholded map, averaged.

    In-graph (works under ``fit``, ``tf.distribute`` and XLA). Scores the
    strict upper triangle above ``threshold`` without the one-pair-per-base
    decoding of :func:`pair_metrics` (see the module docstring). Positions
    with a negative label in ``y_true`` (padding) are ignored.

    Args:
        kind: ``"ppv"``, ``"sensitivity"`` or ``"accuracy"``.
        threshold: default 0.5.
    """

    _KINDS = ("ppv", "sensitivity", "accuracy")

    def __init__(self, kind="accuracy", threshold=0.5, name=None, **kwargs):
        if kind not in self._KINDS:
            raise ValueError(
                f"Argument `kind` must be one of {self._KINDS}. Received: kind={kind!r}"
            )
        super().__init__(name=name or f"pair_{kind}", **kwargs)
        self.kind = kind
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.float32)
        if y_true.shape.rank == 4:
            y_true, y_pred = y_true[..., 0], y_pred[..., 0]
        valid = pair_mask(y_true)
        native = tf.cast(y_true > 0.5, tf.float32) * valid
        predicted = tf.cast(tf.cast(y_pred, tf.float32) > self.threshold, tf.float32) * valid
        tp = tf.reduce_sum(native * predicted, axis=[1, 2])
        n_native = tf.reduce_sum(native, axis=[1, 2])
        n_pred = tf.reduce_sum(predicted, axis=[1, 2])
        both_empty = tf.logical_and(n_native == 0, n_pred == 0)
        ppv = tf.where(n_pred > 0, tp / tf.maximum(n_pred, 1.0), tf.cast(both_empty, tf.float32))
        sen = tf.where(
            n_native > 0, tp / tf.maximum(n_native, 1.0), tf.cast(both_empty, tf.float32)
        )
        score = {"ppv": ppv, "sensitivity": sen, "accuracy": (ppv + sen) / 2}[self.kind]
        self.total.assign_add(tf.reduce_sum(score))
        self.count.assign_add(tf.cast(tf.shape(score)[0], tf.float32))

    def result(self):
        return self.total / tf.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": self.dtype,
        }


def _ranking_positions(score, target, valid):
    """0-based positions of ``target`` items in the filtered ranking of ``score``.

    The ranking orders the ``valid`` items by descending score, ties by
    ascending item id.
    """
    st = score[target][:, None]
    ids = np.arange(len(score))
    ahead = (score[None, :] > st) | ((score[None, :] == st) & (ids[None, :] < target[:, None]))
    return np.sort((ahead & valid[None, :]).sum(axis=1))


def ranking_metrics(scores, targets, exclude=None, ks=(1, 5, 10), per_user=False):
    """MAP, precision@k and recall@k of full rankings, as CosRec evaluates.

    For each user: rank all items by descending score (ties: the lower item
    id first), remove the ``exclude`` items (those seen in training), and
    compare with the user's distinct ``targets``:

    - AP over the full ranking: ``sum_m m / p_m / |targets|``, where
      ``p_1 < p_2 < ...`` are the 1-based positions of the targets found;
    - ``precision@k = hits in the first k / k`` (``k`` capped at the number
      of items left), ``recall@k = hits in the first k / |targets|``.

    A target that is also excluded can never be found but still counts in
    ``|targets|``, as in CosRec. Users without targets are skipped; the
    figures are means over the others.

    Args:
        scores: ``(users, items)`` float array (higher = recommended first).
        targets: one array of item ids per user (row of ``scores``).
        exclude: ``None`` or one array of item ids per user.
        ks: the cut-offs.
        per_user: return per-user arrays (to combine chunks of users)
            instead of the means.

    Returns:
        ``{"map", "precision@k", "recall@k" for k in ks, "users"}``: means
        and the number of users scored; with ``per_user=True`` the arrays
        (``"ap"`` instead of ``"map"``) and ``"users"`` the scored rows.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(
            f"Argument `scores` must be (users, items). Received shape: {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("Argument `scores` holds NaN or infinite values.")
    num_users, num_items = scores.shape
    if len(targets) != num_users:
        raise ValueError(
            f"Argument `targets` must hold one array per row of `scores` ({num_users}). "
            f"Received: {len(targets)}"
        )
    if exclude is not None and len(exclude) != num_users:
        raise ValueError(
            f"Argument `exclude` must hold one array per row of `scores` ({num_users}). "
            f"Received: {len(exclude)}"
        )
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"Argument `ks` must be positive integers. Received: ks={ks}")
    ap, users = [], []
    precision = {k: [] for k in ks}
    recall = {k: [] for k in ks}
    for u in range(num_users):
        target = np.unique(np.asarray(targets[u], dtype=np.int64))
        if target.size == 0:
            continue
        if target.min() < 0 or target.max() >= num_items:
            raise ValueError(
                f"Argument `targets`: user row {u} has item ids outside 0 .. {num_items - 1}."
            )
        valid = np.ones(num_items, bool)
        if exclude is not None:
            ex = np.asarray(exclude[u], dtype=np.int64)
            if ex.size and (ex.min() < 0 or ex.max() >= num_items):
                raise ValueError(
                    f"Argument `exclude`: user row {u} has item ids outside 0 .. {num_items - 1}."
                )
            valid[ex] = False
        found = target[valid[target]]
        pos = _ranking_positions(scores[u], found, valid)
        ap.append(float(np.sum(np.arange(1, len(pos) + 1) / (pos + 1.0))) / target.size)
        left = int(valid.sum())
        for k in ks:
            hits = int(np.sum(pos < k))
            precision[k].append(hits / max(1, min(k, left)))
            recall[k].append(hits / target.size)
        users.append(u)
    out = {"ap" if per_user else "map": np.asarray(ap)}
    for k in ks:
        out[f"precision@{k}"] = np.asarray(precision[k])
        out[f"recall@{k}"] = np.asarray(recall[k])
    if per_user:
        out["users"] = np.asarray(users, dtype=np.int64)
        return out
    means = {key: float(v.mean()) if v.size else float("nan") for key, v in out.items()}
    means["users"] = len(users)
    return means
