"""keras-symconv: symmetry-structured convolutional layers for Keras 3.

Layers whose feature maps are symmetric by construction
(``Z[i, j] == Z[j, i]``), for problems that map a sequence to a symmetric
pairwise matrix: RNA secondary structure, protein contact maps, pairwise item
encodings. After Maduranga, Zadorozhnyy & Ye, "Symmetry Structured
Convolutional Neural Networks".
"""

from keras_symconv import _backend, data, initializers, layers, losses, ops, utils
from keras_symconv.initializers import HalfGlorotNormal, HalfGlorotUniform
from keras_symconv.layers import (
    FromUpper,
    FusedSymmetryGenerating2D,
    RunAfter,
    SelfCartesian,
    Symmetrize,
    SymmetryGenerating2D,
    SymmetryPreserving2D,
    ToUpper,
    UpperBatchNormalization,
)
from keras_symconv.models.cosrec import ItemScorer  # registered for .keras files
from keras_symconv.utils import asymmetry, check_symmetric

if _backend.TENSORFLOW:
    # The metrics and data pipelines are written with TensorFlow; on the
    # other backends the layers, builders and losses run with keras.ops.
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "keras_symconv on the TensorFlow backend needs TensorFlow >= 2.16: pip install "
            "'keras-symconv[cpu]' (or '[gpu]'), or install TensorFlow yourself."
        ) from exc

    from keras_symconv import metrics

__version__ = "0.1.0"

__all__ = [
    "SelfCartesian",
    "SymmetryGenerating2D",
    "FusedSymmetryGenerating2D",
    "SymmetryPreserving2D",
    "Symmetrize",
    "ToUpper",
    "FromUpper",
    "UpperBatchNormalization",
    "RunAfter",
    "ItemScorer",
    "HalfGlorotUniform",
    "HalfGlorotNormal",
    "asymmetry",
    "check_symmetric",
    "data",
    "initializers",
    "losses",
    "layers",
    "ops",
    "utils",
    "__version__",
]
if _backend.TENSORFLOW:
    __all__ += ["metrics"]
