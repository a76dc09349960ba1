"""The compute behind the layers, as pure functions.

Modules, each calling only those listed before it (``slots``, ``geometry``,
``plan`` and ``portable`` import on every backend, the others need
TensorFlow):

- :mod:`~keras_symconv.ops.slots`: where each entry of a symmetric kernel is
  stored (NumPy).
- :mod:`~keras_symconv.ops.kernels`: the packed triangular kernel, its
  expansion to the full kernel and the paper's update rules (eqs. 3 and 5).
- :mod:`~keras_symconv.ops.geometry`: a convolution's sizes and paddings;
  the blocks that tile a map's upper triangle.
- :mod:`~keras_symconv.ops.plan`: the one planner, blocks or full ``conv2d``.
- :mod:`~keras_symconv.ops.columns`: a block's ``conv2d``, on pixels of
  several columns where that fills the CPU's vectors.
- :mod:`~keras_symconv.ops.triangular`: a symmetric convolution of a full
  map computed on its upper triangle.
- :mod:`~keras_symconv.ops.upper`: the upper-triangle layout and the
  convolution in it.
- :mod:`~keras_symconv.ops.generating`: the fused generating convolution,
  a sequence to a symmetric map.
- :mod:`~keras_symconv.ops.convolution`: the strategies the layers call.
- :mod:`~keras_symconv.ops.portable`: the same with ``keras.ops`` and
  autodiff (blocks of the upper triangle, the fused generating convolution),
  for the JAX and PyTorch backends.
"""

from keras_symconv import _backend
from keras_symconv.ops import geometry, plan, portable, slots

if _backend.TENSORFLOW:
    from keras_symconv.ops import (
        columns,
        convolution,
        generating,
        kernels,
        triangular,
        upper,
    )

__all__ = [
    "slots",
    "kernels",
    "geometry",
    "plan",
    "columns",
    "triangular",
    "upper",
    "generating",
    "convolution",
    "portable",
]
