"""Which Keras backend runs, and what needs TensorFlow."""

from __future__ import annotations

import keras

#: The Keras backend at import time ("tensorflow", "jax", "torch", ...).
NAME = keras.backend.backend()
#: Whether the TensorFlow-only compute (blocks, triangular, upper layout) runs.
TENSORFLOW = NAME == "tensorflow"


def require_tensorflow(what):
    """Raise ``RuntimeError`` naming ``what`` when the backend is not TensorFlow."""
    if not TENSORFLOW:
        raise RuntimeError(
            f"{what} needs the TensorFlow backend of Keras. Received: "
            f"keras.backend.backend()={NAME!r}; set KERAS_BACKEND=tensorflow."
        )
