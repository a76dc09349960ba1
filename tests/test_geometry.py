"""Block geometry and the planner (``keras_symconv.ops.geometry``, ``ops.plan``)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_symconv.ops import geometry
from keras_symconv.ops.plan import Rules, plan


def test_effective_size_and_padding():
    assert geometry.effective_size(3) == 3
    assert geometry.effective_size(5, 2) == 9
    assert geometry.conv_padding(4, 1, "same") == (4, 1, 2)  # the extra entry after
    assert geometry.conv_padding(3, 2, "valid") == (5, 0, 0)
    assert geometry.output_length(None, 3, 1, 1, "same") is None
    assert geometry.output_length(10, 3, 2, 1, "same") == 5
    assert geometry.output_length(10, 3, 1, 2, "valid") == 6
    assert geometry.output_length(3, 5, 1, 1, "valid") == 0


@pytest.mark.parametrize("side,strips,splits", [(12, 3, 2), (7, 2, 3), (40, 4, 1), (5, 3, 2)])
def test_blocks_tile_the_upper_triangle_once_and_position_finds_every_entry(side, strips, splits):
    blocks = geometry.Blocks(side, strips, splits)
    covered = np.zeros((side, side), int)
    for k in range(len(blocks)):
        r0, r1, c0, c1 = blocks.bounds(k)
        covered[r0:r1, c0:c1] += 1
    upper = np.triu(np.ones((side, side), int))
    # Every entry on or above the diagonal once; below it only the pieces'
    # small triangles.
    assert (covered[upper == 1] == 1).all()
    assert covered.max() == 1
    rows, cols = np.nonzero(upper)
    flat = blocks.position(tf.constant(rows, tf.int32), tf.constant(cols, tf.int32)).numpy()
    # position() is the entry's index in the blocks concatenated in order.
    expected = []
    offset = 0
    for k in range(len(blocks)):
        r0, r1, c0, c1 = blocks.bounds(k)
        table = {(r, c): offset + (r - r0) * (c1 - c0) + (c - c0) for r in range(r0, r1)
                 for c in range(c0, c1)}  # fmt: skip
        expected.append(table)
        offset += (r1 - r0) * (c1 - c0)
    lookup = {key: value for table in expected for key, value in table.items()}
    assert flat.tolist() == [lookup[(r, c)] for r, c in zip(rows, cols, strict=True)]


def test_blocks_from_a_tensor_side_equal_the_static_ones():
    static = geometry.Blocks(23, 3, 2)
    dynamic = geometry.Blocks(tf.constant(23), 3, 2)
    assert not dynamic.static and static.static
    for name in ("r0", "c0", "h", "w"):
        np.testing.assert_array_equal(getattr(dynamic, name).numpy(), getattr(static, name))
    assert [dynamic.touches(k) for k in range(len(static))] == [
        static.touches(k) for k in range(len(static))
    ]
    # The first piece touches the top and left borders, the last strip the right.
    assert static.touches(0) == (True, False, True, False)
    assert static.touches(len(static) - 1)[1:] == (True, False, True)


def test_min_side_makes_every_block_as_high_as_the_kernel_span():
    for c, d, strips, splits in [(3, 1, 2, 2), (5, 2, 3, 1), (1, 1, 4, 3)]:
        side = geometry.min_side(c, d, strips, splits)
        blocks = geometry.Blocks(side, strips, splits)
        assert blocks.h[blocks.piece].min() >= max(geometry.effective_size(c, d), 2)


def test_plan_full_layout():
    rules = Rules(min_side=20, min_work=0, strip_height=4, max_strips=3, max_splits=1)
    assert plan(19, 3, 1, rules=rules) is None  # auto: below min_side
    assert plan(20, 3, 1, rules=rules) == (3, 1)
    assert plan(20, 3, 1, work=10, rules=Rules(min_side=20, min_work=11)) is None
    assert plan(19, 3, 1, compute="triangular", rules=rules) == (3, 1)
    assert plan(8, 3, 1, compute="triangular", rules=rules) == (2, 1)  # fewer, thicker strips
    assert plan(5, 3, 1, compute="triangular", rules=rules) is None  # not even two fit
    assert plan(None, 3, 1, rules=rules) is None  # auto, side unknown: full
    assert plan(None, 3, 1, compute="triangular", rules=rules) == rules.dynamic
    assert plan(500, 3, 1, compute="full", rules=rules) is None
    split_rules = Rules(strip_height=8, max_strips=3, max_splits=3)
    assert plan(27, 3, 1, compute="triangular", rules=split_rules) == (3, 3)
    assert plan(26, 3, 1, compute="triangular", rules=split_rules) == (3, 2)  # pieces first


def test_plan_upper_layout_takes_every_side():
    rules = Rules()
    assert plan(None, 3, 1, "upper", rules=rules) == rules.upper_dynamic
    assert plan(3, 3, 1, "upper") == (1, 1)
    assert plan(1500, 3, 1, "upper") == (16, 4)  # 23 strips wanted, 16 at most
    assert plan(256, 13, 1, "upper") == (4, 4)  # 64-row strips, 16-row pieces (>= 13)
    assert plan(256, 5, 4, "upper") == (4, 3)  # span 17: 64 // 17 = 3 pieces
    assert plan(256, 3, 1, "upper", compute="full") is None
