"""Batch normalization of maps in the upper-triangle layout."""

from __future__ import annotations

import keras

from keras_symconv import _backend
from keras_symconv.layers._base import upper_input_shape
from keras_symconv.ops import portable

if _backend.TENSORFLOW:
    import tensorflow as tf

    from keras_symconv.ops import upper


@keras.saving.register_keras_serializable(package="keras_symconv")
class UpperBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization of a map in the upper-triangle layout.

    Normalizes ``(batch, L (L + 1) / 2, channels)`` per channel with the
    statistics of the full symmetric map: an entry off the diagonal counts
    twice (it stands for ``(r, c)`` and ``(c, r)``), a diagonal entry once.
    So with the same weights it computes what ``keras.layers.BatchNormalization``
    computes on the full map, in training (batch statistics, moving-average
    updates) and in inference. Arguments are ``BatchNormalization``'s, with
    ``axis=-1`` and no ``renorm``; ``synchronized=True`` sums the statistics
    over the replicas of a ``tf.distribute`` strategy.
    """

    def __init__(self, **kwargs):
        axis = kwargs.get("axis", -1)
        if axis not in (-1, 2):
            raise ValueError(
                f"UpperBatchNormalization normalizes the channel axis (-1). Received: axis={axis}"
            )
        if kwargs.get("renorm"):
            raise ValueError("UpperBatchNormalization does not support renorm=True.")
        super().__init__(**kwargs)
        self.supports_masking = False

    def build(self, input_shape):
        upper_input_shape(self, input_shape)
        super().build(input_shape)

    def _full_map_moments(self, x):
        """Mean and (biased) variance per channel over the full maps of ``x``."""
        side = upper.map_side(x)
        diag = tf.gather(x, upper.diagonal_index(side), axis=1)
        count = tf.cast(tf.shape(x)[0] * side * side, x.dtype)

        def weighted_sum(values, diagonal):
            # Off-diagonal entries twice, diagonal ones once.
            return 2.0 * tf.reduce_sum(values, axis=[0, 1]) - tf.reduce_sum(diagonal, axis=[0, 1])

        context = tf.distribute.get_replica_context()
        if self.synchronized and context is not None and context.num_replicas_in_sync > 1:
            sums = tf.concat(
                [
                    weighted_sum(x, diag),
                    weighted_sum(tf.square(x), tf.square(diag)),
                    count[None],
                ],
                axis=0,
            )
            sums = context.all_reduce(tf.distribute.ReduceOp.SUM, sums)
            channels = tf.shape(x)[-1]
            mean = sums[:channels] / sums[-1]
            variance = tf.maximum(sums[channels:-1] / sums[-1] - tf.square(mean), 0.0)
            return mean, variance
        mean = weighted_sum(x, diag) / count
        centre = tf.stop_gradient(mean)
        # squared_difference, not square(x - centre): its gradient reads x,
        # which the step holds anyway, where square's would hold the
        # difference, one more copy of the map until the backward pass.
        variance = (
            weighted_sum(tf.math.squared_difference(x, centre), tf.square(diag - centre)) / count
        )
        return mean, variance

    def call(self, inputs, training=None):
        ops = keras.ops
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        x = ops.cast(inputs, "float32" if dtype in ("float16", "bfloat16") else dtype)
        if training and self.trainable:
            if _backend.TENSORFLOW:
                mean, variance = self._full_map_moments(x)
            else:
                mean, variance = portable.upper_moments(x)
            momentum = self.momentum
            self.moving_mean.assign(
                ops.cast(self.moving_mean, x.dtype) * momentum + mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                ops.cast(self.moving_variance, x.dtype) * momentum + variance * (1.0 - momentum)
            )
        else:
            mean = ops.cast(self.moving_mean, x.dtype)
            variance = ops.cast(self.moving_variance, x.dtype)
        outputs = ops.batch_normalization(
            x,
            mean,
            variance,
            axis=-1,
            offset=ops.cast(self.beta, x.dtype) if self.center else None,
            scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)
