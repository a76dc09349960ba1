"""Test configuration: the backend's test files, two logical CPU devices.

On TensorFlow (the default) the whole suite runs, with two logical CPU
devices for the tf.distribute tests (they can only be configured before
TensorFlow's runtime starts, so this runs first, at collection). On another
backend (``KERAS_BACKEND=jax pytest``) only the files in ``ANY_BACKEND``.
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

#: Test files written for every Keras backend (NumPy and keras.ops only).
#: Under KERAS_BACKEND=jax or torch only these are collected; every test in
#: them carries the ``backends`` marker.
ANY_BACKEND = ("test_backends.py", "test_losses.py", "test_saved_files.py", "test_tiling.py")

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

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


def pytest_ignore_collect(collection_path, config):
    """Off TensorFlow, collect only the files written for every backend."""
    if keras.backend.backend() == "tensorflow" or collection_path.is_dir():
        return None
    name = collection_path.name
    if name.startswith("test_") and name.endswith(".py") and name not in ANY_BACKEND:
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in ANY_BACKEND:
            item.add_marker(pytest.mark.backends)
