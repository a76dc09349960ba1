"""Half-Glorot initializers, the paper's default for symmetric kernels.

Every free weight of a symmetric kernel fills two (preserving) or up to four
(generating) entries of the full kernel, so the paper draws the full kernel
with half the Glorot variance: ``Var = 1 / (fan_in + fan_out)`` instead of
``2 / (fan_in + fan_out)``, with the fans of the *full* kernel
``(C, C, in_channels, filters)``: ``fan_in = C*C*in_channels``,
``fan_out = C*C*filters``.

The symmetric layers call their kernel initializer with the full kernel
shape and keep one entry per packed slot, so any Keras initializer (these,
``"he_normal"``, ...) sees the same fans as it would in a ``Conv2D``.
"""

from __future__ import annotations

import keras

__all__ = ["HalfGlorotUniform", "HalfGlorotNormal"]


@keras.saving.register_keras_serializable(package="keras_symconv")
class HalfGlorotUniform(keras.initializers.VarianceScaling):
    """Uniform on ``[-limit, limit]``, ``limit = sqrt(3 / (fan_in + fan_out))``.

    Half the variance of ``keras.initializers.GlorotUniform``.

    Args:
        seed: optional integer or ``keras.random.SeedGenerator``.

    Example:

    >>> init = HalfGlorotUniform(seed=1)
    >>> tuple(init((3, 3, 4, 8)).shape)
    (3, 3, 4, 8)
    """

    def __init__(self, seed=None):
        super().__init__(scale=0.5, mode="fan_avg", distribution="uniform", seed=seed)

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._init_seed)}


@keras.saving.register_keras_serializable(package="keras_symconv")
class HalfGlorotNormal(keras.initializers.VarianceScaling):
    """Truncated normal with ``stddev = sqrt(1 / (fan_in + fan_out))``.

    Half the variance of ``keras.initializers.GlorotNormal``.

    Args:
        seed: optional integer or ``keras.random.SeedGenerator``.
    """

    def __init__(self, seed=None):
        super().__init__(scale=0.5, mode="fan_avg", distribution="truncated_normal", seed=seed)

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._init_seed)}
