"""Which Keras backend runs, and what needs TensorFlow."""

from __future__ import annotations

import importlib

import keras

#: The Keras backend at import time ("tensorflow", "jax", "torch", ...).
NAME = keras.backend.backend()
#: Whether the TensorFlow-only compute (blocks, triangular, upper layout) runs.
TENSORFLOW = NAME == "tensorflow"


def import_tensorflow(what):
    """``tensorflow``, or an ``ImportError`` naming ``what`` and the backend.

    For the parts written with TensorFlow itself (tf.data pipelines, losses,
    metrics, tfds builders): they work under any Keras backend as long as
    TensorFlow is installed, since ``tf.data`` feeds every backend's ``fit``.
    """
    try:
        return importlib.import_module("tensorflow")
    except ImportError as exc:
        raise ImportError(
            f"{what} needs TensorFlow, which is not installed (Keras backend: {NAME!r}). "
            "pip install 'keras-symconv[cpu]' (or '[gpu]'); the layers and builders "
            "need no TensorFlow on the JAX and PyTorch backends."
        ) from exc


class BackendError(RuntimeError):
    """A TensorFlow-backend-only part was used under another Keras backend."""


def require_tensorflow(what):
    """``tensorflow``, or a :class:`BackendError` naming ``what`` and the backend.

    For the parts that drive the model with TensorFlow (``tf.distribute``
    strategies and the multi-worker training loop).
    """
    if not TENSORFLOW:
        raise BackendError(
            f"{what} needs the TensorFlow backend of Keras. Received: "
            f"keras.backend.backend()={NAME!r}; set KERAS_BACKEND=tensorflow."
        )
    return import_tensorflow(what)
