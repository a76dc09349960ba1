"""The examples in the package's docstrings run and print what they show."""

import doctest

import pytest
from keras_symconv.models import contact_map, cosrec, rna

from keras_symconv import initializers, utils
from keras_symconv.layers import generating, maps, preserving
from keras_symconv.ops import slots


@pytest.mark.parametrize(
    "module", [slots, generating, preserving, maps, initializers, utils, rna, contact_map, cosrec]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"no examples found in {module.__name__}"
    assert result.failed == 0
