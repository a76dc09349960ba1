"""Symmetry-structured Keras layers, one file per family.

- :mod:`~keras_symconv.layers.generating`: :class:`SymmetryGenerating2D`
  (a self-Cartesian product to a symmetric map, the paper's Theorem 1) and
  :class:`FusedSymmetryGenerating2D` (the same from the sequence, without
  the pair tensor).
- :mod:`~keras_symconv.layers.preserving`: :class:`SymmetryPreserving2D`
  (a symmetric map to a symmetric map).
- :mod:`~keras_symconv.layers.maps`: :class:`SelfCartesian`,
  :class:`Symmetrize`, :class:`ToUpper`, :class:`FromUpper`,
  :class:`RunAfter`.
- :mod:`~keras_symconv.layers.normalization`: :class:`UpperBatchNormalization`.

The convolutions hold only the packed triangular kernel as a trainable
variable, expand it to the full kernel in ``call`` with a gather from a
constant index map, and differentiate the expansion with the paper's update
rules (eqs. 3 and 5) written out (:mod:`keras_symconv.ops.kernels`). They
take the arguments of ``keras.layers.Conv2D`` so one can replace the other,
and reject what cannot stay symmetric. Their compute is in
:mod:`keras_symconv.ops`.
"""

from keras_symconv.layers.generating import FusedSymmetryGenerating2D, SymmetryGenerating2D
from keras_symconv.layers.maps import FromUpper, RunAfter, SelfCartesian, Symmetrize, ToUpper
from keras_symconv.layers.normalization import UpperBatchNormalization
from keras_symconv.layers.preserving import SymmetryPreserving2D

__all__ = [
    "SelfCartesian",
    "SymmetryGenerating2D",
    "SymmetryPreserving2D",
    "Symmetrize",
    "FusedSymmetryGenerating2D",
    "ToUpper",
    "FromUpper",
    "UpperBatchNormalization",
    "RunAfter",
]
