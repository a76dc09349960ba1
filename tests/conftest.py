"""Test configuration: two logical CPU devices (for tf.distribute tests).

Logical devices can only be configured before TensorFlow's runtime starts, so
this runs first, at collection.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Under pytest-xdist each worker gets its share of the cores, so that the
# workers' TensorFlow thread pools do not oversubscribe the machine.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _share)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a fixed seed and the default dtype policy."""
    keras.utils.set_random_seed(1234)
    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")
    # free_memory=False: no gc.collect() after every test (a quarter second
    # each); Python's own collector still runs.
    keras.backend.clear_session(free_memory=False)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most four.

    Every worker holds its own TensorFlow runtime and models (about 1-2 GB),
    so more workers cost memory faster than they save time.
    """
    return max(1, min(4, os.cpu_count() or 1))
