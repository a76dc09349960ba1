"""Sequential recommendation data: interaction files, time splits, windows.

The format is the one of Caser and CosRec: one interaction per line,
``user item [rating]`` separated by white space, each user's lines in time
order (they may be interleaved with other users' lines). Raw ids are any
tokens; they are mapped to dense ids in order of first appearance, users from
0 and items from 1, because item 0 pads short sequences.

Training examples are CosRec's sliding windows: for each user, every run of
``L + T`` consecutive training items gives ``L`` input items and ``T``
targets; a user with fewer than ``L + T`` items gives one window, padded with
0 on the left. Each target is paired with negatives drawn uniformly from the
items the user has not interacted with in training, fresh for every epoch and
reproducible from the seed (:func:`rec_training_dataset`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_symconv._backend import import_tensorflow
from keras_symconv.data.labels import IGNORE_LABEL

__all__ = [
    "PAD_ITEM",
    "Interactions",
    "RecSplit",
    "read_interactions",
    "split_by_time",
    "read_split",
    "sliding_windows",
    "last_items",
    "rec_training_dataset",
]

#: The item id that pads sequences shorter than the window (never a real item).
PAD_ITEM = 0


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Time-ordered interactions with dense ids.

    Attributes:
        sequences: one int array per user id (``0 .. num_users - 1``), the
            user's items (``1 .. num_items - 1``) in time order.
        user_map: raw user token -> user id.
        item_map: raw item token -> item id (from 1).
    """

    sequences: list
    user_map: dict
    item_map: dict

    @property
    def num_users(self):
        return len(self.user_map)

    @property
    def num_items(self):
        """Item ids including the padding id 0 (the size of an item table)."""
        return len(self.item_map) + 1

    @property
    def num_interactions(self):
        return int(sum(len(s) for s in self.sequences))


def _parse_line(line, path, number):
    tokens = line.split()
    if len(tokens) not in (2, 3):
        raise ValueError(
            f"{path}:{number}: expected 'user item [rating]', got {len(tokens)} "
            f"field(s): {line.strip()!r}"
        )
    if len(tokens) == 3:
        try:
            float(tokens[2])
        except ValueError:
            raise ValueError(
                f"{path}:{number}: the rating must be a number, got {tokens[2]!r}"
            ) from None
    return tokens[0], tokens[1]


def read_interactions(paths, user_map=None, item_map=None):
    """Read ``user item [rating]`` files into per-user time-ordered sequences.

    Several files are read in the order given and each user's interactions
    concatenated in that order (e.g. an earlier and a later part of the same
    histories). Ratings are checked but not kept (implicit feedback).

    Args:
        paths: a file or a list of files.
        user_map, item_map: id maps to start from (copied, then extended by
            ids first seen here), e.g. those of a training run, so that the
            same raw ids get the same dense ids.

    Raises:
        ValueError: naming the file and the line, for a line that is not two
            or three fields or whose rating is not a number, and for a file
            without interactions.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    user_map = dict(user_map or {})
    item_map = dict(item_map or {})
    if sorted(item_map.values()) != list(range(1, len(item_map) + 1)):
        raise ValueError("Argument `item_map` must map to the ids 1 .. len(item_map).")
    if sorted(user_map.values()) != list(range(len(user_map))):
        raise ValueError("Argument `user_map` must map to the ids 0 .. len(user_map) - 1.")
    sequences = {}
    for path in paths:
        count = 0
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                user, item = _parse_line(line, path, number)
                u = user_map.setdefault(user, len(user_map))
                i = item_map.setdefault(item, len(item_map) + 1)
                sequences.setdefault(u, []).append(i)
                count += 1
        if count == 0:
            raise ValueError(f"{path}: no interactions in this file")
    seqs = [np.asarray(sequences.get(u, []), dtype=np.int32) for u in range(len(user_map))]
    return Interactions(seqs, user_map, item_map)


@dataclasses.dataclass(frozen=True)
class RecSplit:
    """Per-user time split: ``train``, ``valid``, ``test`` (lists of arrays).

    ``num_items`` counts the padding id. Evaluating on ``valid`` uses
    ``train`` as the history; evaluating on ``test`` uses ``train`` followed
    by ``valid`` (:meth:`history`).
    """

    train: list
    valid: list
    test: list
    num_users: int
    num_items: int

    def history(self, part):
        """The items known before ``part`` (``"valid"`` or ``"test"``), per user."""
        if part == "valid":
            return self.train
        if part == "test":
            return [np.concatenate([a, b]) for a, b in zip(self.train, self.valid, strict=True)]
        raise ValueError(f"Argument `part` must be 'valid' or 'test'. Received: part={part!r}")

    def targets(self, part):
        if part not in ("valid", "test"):
            raise ValueError(f"Argument `part` must be 'valid' or 'test'. Received: part={part!r}")
        return getattr(self, part)


def split_by_time(interactions, fractions=(0.7, 0.1, 0.2)):
    """Split each user's sequence by time into train / validation / test.

    For a user with ``n`` items: the last ``max(1, round(f_test * n))`` are
    test, the ``max(1, round(f_valid * n))`` before them validation and the
    rest (at least one) training, so that every user is evaluated on both
    parts. Users with fewer than 3 items cannot be split that way: all their
    items stay in training and they are not evaluated (their number is in the
    ``ValueError`` if every user is like that).

    Args:
        interactions: an :class:`Interactions`.
        fractions: ``(train, valid, test)``, positive, summing to 1.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            "Argument `fractions` must be three positive numbers (train, valid, "
            f"test) summing to 1. Received: fractions={fractions}"
        )
    train, valid, test = [], [], []
    empty = np.zeros(0, np.int32)
    for seq in interactions.sequences:
        n = len(seq)
        if n < 3:
            train.append(seq)
            valid.append(empty)
            test.append(empty)
            continue
        n_test = min(n - 2, max(1, int(round(fractions[2] * n))))
        n_valid = min(n - n_test - 1, max(1, int(round(fractions[1] * n))))
        n_train = n - n_test - n_valid
        train.append(seq[:n_train])
        valid.append(seq[n_train : n_train + n_valid])
        test.append(seq[n_train + n_valid :])
    if not any(len(t) for t in test):
        raise ValueError(
            "No user has the 3 interactions a train/validation/test split needs "
            f"({interactions.num_users} users)."
        )
    return RecSplit(train, valid, test, interactions.num_users, interactions.num_items)


def read_split(train, valid, test, user_map=None, item_map=None):
    """A :class:`RecSplit` from files already split (e.g. CosRec's train/test files).

    The three files are read with one pair of id maps (returned), so an item
    first seen in ``valid`` or ``test`` gets an id too (its output weights
    are never trained). ``valid`` may be ``None`` (no validation part).

    Returns:
        ``(split, user_map, item_map)``.
    """
    parts = []
    for path in (train, valid, test):
        if path is None:
            parts.append(None)
            continue
        inter = read_interactions(path, user_map, item_map)
        user_map, item_map = inter.user_map, inter.item_map
        parts.append(inter.sequences)
    num_users = len(user_map)
    empty = np.zeros(0, np.int32)
    seqs = [[empty] * num_users if p is None else p + [empty] * (num_users - len(p)) for p in parts]
    split = RecSplit(*seqs, num_users=num_users, num_items=len(item_map) + 1)
    return split, user_map, item_map


def _check_lengths(sequence_length, target_length):
    for name, value in (("sequence_length", sequence_length), ("target_length", target_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Argument `{name}` must be a positive integer. Received: {value!r}")


def sliding_windows(sequences, sequence_length=5, target_length=3):
    """CosRec's training windows of ``sequence_length + target_length`` items.

    Returns:
        ``(users, inputs, targets)``: int32 arrays ``(N,)``, ``(N, L)`` and
        ``(N, T)``. Each user with ``n >= L + T`` items gives ``n - L - T + 1``
        windows (step 1); a shorter non-empty sequence gives one window padded
        with :data:`PAD_ITEM` on the left, so its first targets may be padding
        (the training pipeline ignores those). Users without items give none.
    """
    _check_lengths(sequence_length, target_length)
    width = sequence_length + target_length
    users, windows = [], []
    for u, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int32)
        if len(seq) == 0:
            continue
        if len(seq) < width:
            seq = np.concatenate([np.full(width - len(seq), PAD_ITEM, np.int32), seq])
        w = np.lib.stride_tricks.sliding_window_view(seq, width)
        windows.append(w)
        users.append(np.full(len(w), u, np.int32))
    if not windows:
        raise ValueError("Argument `sequences` holds no items: no training windows.")
    windows = np.concatenate(windows).astype(np.int32)
    return (
        np.concatenate(users),
        np.ascontiguousarray(windows[:, :sequence_length]),
        np.ascontiguousarray(windows[:, sequence_length:]),
    )


def last_items(sequences, sequence_length=5):
    """The last ``sequence_length`` items of each sequence, padded on the left.

    The model input for scoring the next items of every user: ``(users, L)``.
    """
    _check_lengths(sequence_length, 1)
    out = np.full((len(sequences), sequence_length), PAD_ITEM, np.int32)
    for u, seq in enumerate(sequences):
        tail = np.asarray(seq[-sequence_length:], dtype=np.int32)
        if len(tail):
            out[u, sequence_length - len(tail) :] = tail
    return out


def _interaction_codes(sequences, num_items):
    """Sorted unique ``user * num_items + item`` codes of the training items."""
    codes = [u * num_items + np.unique(s).astype(np.int64) for u, s in enumerate(sequences)]
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)


def rec_training_dataset(
    sequences,
    num_items,
    sequence_length=5,
    target_length=3,
    negatives=3,
    batch_size=512,
    seed=0,
    epoch=None,
    shuffle=True,
    drop_remainder=False,
):
    """A tf.data pipeline of CosRec training batches with sampled negatives.

    Each element is ``({"user": (b,), "sequence": (b, L), "items": (b, K)},
    labels (b, K))`` with ``K = T * (1 + negatives)``: the ``T`` targets
    (label 1, or :data:`~keras_symconv.losses.IGNORE_LABEL` where a short
    window's target is padding) then ``negatives`` items per target (label
    0), drawn uniformly from ``1 .. num_items - 1`` without the items of the
    user's training sequence. The negatives are drawn in the graph with
    stateless random ops, seeded per batch.

    Args:
        sequences: training items per user (``RecSplit.train``).
        num_items: item ids including padding (``RecSplit.num_items``).
        seed: seeds the shuffle and the negatives.
        epoch: ``None`` for a dataset to pass to ``fit(..., epochs=E)``: each
            pass reshuffles and redraws, the same passes for the same seed.
            An int gives that one pass, fixed, whatever else ran before
            (for loops that resume from a checkpoint).
        shuffle: shuffle the windows (all of them, seeded).

    Returns:
        ``(dataset, steps)``: the dataset and its batches per pass.
    """
    from keras_symconv.data.pipeline import pipeline_options

    tf = import_tensorflow("keras_symconv.data.rec_training_dataset")

    for name, value in (("negatives", negatives), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Argument `{name}` must be a positive integer. Received: {value!r}")
    num_items = int(num_items)
    users, inputs, targets = sliding_windows(sequences, sequence_length, target_length)
    if inputs.max(initial=0) >= num_items or targets.max(initial=0) >= num_items:
        raise ValueError(
            f"Argument `num_items` ({num_items}) must exceed every item id in `sequences` "
            f"({max(int(inputs.max()), int(targets.max()))})."
        )
    known = [len(np.unique(s[s != PAD_ITEM])) for s in map(np.asarray, sequences)]
    if max(known, default=0) >= num_items - 1:
        raise ValueError(
            "A user has interacted with every item: no negative can be sampled for it."
        )
    codes = tf.constant(_interaction_codes(sequences, num_items))
    count = target_length * negatives
    n = len(users)
    steps = n // batch_size if drop_remainder else -(-n // batch_size)

    def draw(user, batch_seed):
        b = tf.shape(user)[0]
        owner = tf.cast(user, tf.int64)[:, None] * num_items

        def seen(candidates):
            c = owner + tf.cast(candidates, tf.int64)
            at = tf.minimum(tf.searchsorted(codes, tf.reshape(c, [-1])), tf.size(codes) - 1)
            return tf.reshape(tf.gather(codes, at), tf.shape(c)) == c

        def sample(k):
            s = tf.stack([batch_seed, tf.cast(k, tf.int64)])
            return tf.random.stateless_uniform(
                [b, count], seed=s, minval=1, maxval=num_items, dtype=tf.int32
            )

        def body(k, candidates):
            fresh = sample(k)
            return k + 1, tf.where(seen(candidates), fresh, candidates)

        _, candidates = tf.while_loop(
            lambda k, c: tf.reduce_any(seen(c)), body, [tf.constant(1), sample(0)]
        )
        return candidates

    def to_example(batch, batch_seed):
        user, seq, tgt = batch
        neg = draw(user, batch_seed)
        items = tf.concat([tgt, neg], axis=1)
        pos_label = tf.where(tgt == PAD_ITEM, IGNORE_LABEL, 1.0)
        labels = tf.concat([pos_label, tf.zeros(tf.shape(neg), tf.float32)], axis=1)
        return {"user": user, "sequence": seq, "items": items}, labels

    if epoch is None:
        shuffle_seed, rerandomize = seed, True
    else:
        # One fixed pass per (seed, epoch), independent of what ran before.
        shuffle_seed = int(np.random.SeedSequence([seed, int(epoch)]).generate_state(1)[0])
        rerandomize = False
    ds = tf.data.Dataset.from_tensor_slices((users, inputs, targets))
    if shuffle:
        ds = ds.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=rerandomize)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    seeds = tf.data.Dataset.random(seed=shuffle_seed + 1, rerandomize_each_iteration=rerandomize)
    ds = tf.data.Dataset.zip((ds, seeds)).map(to_example)
    return ds.prefetch(2).with_options(pipeline_options()), steps
