"""Label values shared by the data pipelines, the losses and the metrics (no TensorFlow)."""

__all__ = ["IGNORE_LABEL"]

#: Label of padded (ignored) positions in ``y_true``: the losses and metrics
#: skip every negative label.
IGNORE_LABEL = -1.0
