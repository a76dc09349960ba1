"""keras-symconv: symmetry-structured convolutional layers for Keras 3.

Layers whose feature maps are symmetric by construction
(``Z[i, j] == Z[j, i]``), for problems that map a sequence to a symmetric
pairwise matrix: RNA secondary structure, protein contact maps, pairwise item
encodings. After Maduranga, Zadorozhnyy & Ye, "Symmetry Structured
Convolutional Neural Networks".
"""

import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_symconv needs the TensorFlow backend of Keras 3. "
        f"Received: keras.backend.backend()={keras.backend.backend()!r}; set "
        "KERAS_BACKEND=tensorflow."
    )

try:
    import tensorflow  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "keras_symconv needs TensorFlow >= 2.16: pip install "
        "'keras-symconv[cpu]' (or '[gpu]'), or install TensorFlow yourself."
    ) from exc

from keras_symconv import (  # noqa: E402
    data,
    initializers,
    layers,
    losses,
    metrics,
    ops,
    utils,
)
from keras_symconv.initializers import HalfGlorotNormal, HalfGlorotUniform  # noqa: E402
from keras_symconv.layers import (  # noqa: E402
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
from keras_symconv.models.cosrec import ItemScorer  # noqa: E402  (registers it)
from keras_symconv.utils import asymmetry, check_symmetric  # noqa: E402

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
    "metrics",
    "layers",
    "ops",
    "utils",
    "__version__",
]
