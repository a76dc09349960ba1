"""Tiny builder configurations and small test data, for fast tests on any backend."""

import numpy as np

RNA_TINY = dict(
    lstm_units=4,
    dense_units=3,
    first_filters=6,
    block1=((5, 4), (3, 2)),
    block2=((3, 4),),
    block3=((3, 4),),
    side_filters=2,
)

CONTACT_TINY = dict(
    lstm_units=4,
    dense_units=3,
    first_filters=6,
    blocks=(((5, 4), (3, 2)), ((3, 4),)),
    final_blocks=(((3, 4),),),
)


def pair_map(length, pairs):
    """A symmetric 0/1 ``(length, length)`` map with ones at ``pairs`` and their mirrors."""
    m = np.zeros((length, length), np.float32)
    for i, j in pairs:
        m[i, j] = m[j, i] = 1
    return m
