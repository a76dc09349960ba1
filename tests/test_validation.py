"""Argument checks shared by the layers, the kernel algebra and the builders."""

import numpy as np
import pytest

from keras_symconv import _validation as check


def test_integer():
    assert check.integer(np.int64(3), "n") == 3
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=r"`n` must be a positive integer\. Received: n="):
            check.integer(bad, "n")
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 2\. Received: k=1"):
        check.integer(1, "k", minimum=2)


def test_square_padding_choice_overrides():
    assert check.square((3, 3), "kernel_size") == 3
    with pytest.raises(ValueError, match="same on both spatial axes.*kernel_size=\\(3, 5\\)"):
        check.square((3, 5), "kernel_size")
    with pytest.raises(ValueError, match="integer or a pair"):
        check.square((3, 3, 3), "kernel_size")
    assert check.padding("SAME") == "same"
    with pytest.raises(ValueError, match="`padding` must be 'same' or 'valid'.*'causal'"):
        check.padding("causal")
    with pytest.raises(
        ValueError, match="`layout` must be 'full' or 'upper'. Received: layout='x'"
    ):
        check.choice("x", "layout", ("full", "upper"))
    assert check.overrides({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    with pytest.raises(TypeError, match=r"Unknown argument\(s\): \['c'\]"):
        check.overrides({"a": 1}, {"c": 0})
