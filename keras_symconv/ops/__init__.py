"""The compute behind the layers, as pure TensorFlow functions.

Modules, each calling only those listed before it:

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
"""

from keras_symconv.ops import (
    columns,
    convolution,
    generating,
    geometry,
    kernels,
    plan,
    triangular,
    upper,
)

__all__ = [
    "kernels",
    "geometry",
    "plan",
    "columns",
    "triangular",
    "upper",
    "generating",
    "convolution",
]
