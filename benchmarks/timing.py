"""The timing and memory harness of the benchmarks.

Side-by-side timing (interleaved, median of repetitions after a warm-up),
the allocator and resident peaks of a step, fresh processes per memory
figure, and the machine's description.
"""

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from cpu import cpu_name  # noqa: E402


def machine():
    """One line naming the machine and the software, for every benchmark's log.

    The CPU model matters: absolute times differ several-fold between
    2-core machines of this project.
    """
    return (
        f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"TF {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}"
    )


def make_steps(layer, x, jit):
    variables = layer.trainable_variables

    def forward(inputs):
        return tf.reduce_sum(layer(inputs))

    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.square(layer(inputs)))
        grads = tape.gradient(loss, [inputs] + variables)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return (
        tf.function(forward, jit_compile=jit),
        tf.function(forward_backward, jit_compile=jit),
    )


def _wait(result):
    """Block until a step's result exists (tensors are computed asynchronously)."""
    return result.numpy() if hasattr(result, "numpy") else result


def time_many(steps, x, reps, warmup=2):
    """Interleaved timing of several steps on ``x``; the median seconds of each."""
    for _ in range(warmup):
        for step in steps:
            _wait(step(x))
    times = [[] for _ in steps]
    for _ in range(reps):
        for step, record in zip(steps, times, strict=True):
            start = time.perf_counter()
            _wait(step(x))
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class Peak(NamedTuple):
    """A step's peak memory in MiB: resident set, and TensorFlow's allocator (or ``None``)."""

    resident: float
    allocator: float | None


def _allocator_stats(reset=False):
    # TensorFlow's CPU allocator keeps statistics when oneDNN is on (its
    # BFC-based allocator); the plain one raises ValueError.
    try:
        if reset:
            tf.config.experimental.reset_memory_stats("CPU:0")
        return tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return None


def step_peak_mib(step, x, trace=None, warm_runs=3):
    """Peak memory of ``step(x)`` above the memory held before it, a :class:`Peak`.

    For a fresh process started by :func:`run_memory_child`. ``trace``, if
    given, builds the step's graph without running it (e.g. a
    ``tf.function``'s ``get_concrete_function``), so that tracing is not
    counted.

    - Resident: the resident-set high-water mark of the first run (reset
      through ``/proc/self/clear_refs`` just before it) minus the resident
      set before it. Only the first run shows it: with oneDNN on
      (TensorFlow's default on x86 CPUs with AVX-512 VNNI / BF16),
      TensorFlow's CPU allocator keeps the memory a step freed, so a later
      step's high-water mark shows nothing (RESULTS.md, "Fused symmetry
      generation", note on memory). So it includes the
      first run's one-time costs (the graph's instantiation and
      optimization, oneDNN's generated kernels) and the allocator's pool,
      grown in regions that double in size, with its fragmentation.
    - Allocator (where TensorFlow's CPU allocator keeps statistics): the
      peak of bytes in use during a step minus those in use before it, the
      median over ``warm_runs`` runs after the first: the tensors' own
      memory, with the allocator's rounding, in the steady state (the
      order in which independent operations run, and so the peak, varies
      from run to run).
    """
    if trace is not None:
        trace()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # the high-water mark becomes the current resident set
    stats = _allocator_stats(reset=True)
    _wait(step(x))
    resident = (_status_kib("VmHWM") - before) / 1024.0
    if stats is None:
        return Peak(resident, None)
    peaks = []
    for _ in range(warm_runs):
        stats = _allocator_stats(reset=True)
        _wait(step(x))
        peaks.append((_allocator_stats()["peak"] - stats["current"]) / 2**20)
    return Peak(resident, statistics.median(peaks))


def peak_text(peak):
    """``"resident / allocator"`` MiB (``-`` where the allocator keeps no statistics)."""
    allocator = "-" if peak.allocator is None else f"{peak.allocator:.0f}"
    return f"{peak.resident:.0f} / {allocator}"


def peak_ratio_text(a, b, digits=3, suffix=""):
    """``a / b`` of both figures of two :class:`Peak` s, as :func:`peak_text` lays them out."""
    resident = f"{a.resident / b.resident:.{digits}f}{suffix}"
    if a.allocator is None or b.allocator is None:
        return f"{resident} / -"
    return f"{resident} / {a.allocator / b.allocator:.{digits}f}{suffix}"


#: Fresh processes per memory figure (:func:`run_memory_child` takes their median).
MEMORY_RUNS = 3


def run_memory_child(script, argv, runs=MEMORY_RUNS):
    """Run ``script argv`` in ``runs`` fresh processes; the median :class:`Peak` of theirs.

    Each process prints its :class:`Peak` on its last stdout line
    (``print(*peak)``). glibc is told to return every allocation of 64 KiB
    or more to the system when it is freed (``MALLOC_MMAP_THRESHOLD_``), so
    the resident set follows the live tensors rather than glibc's cache.
    The median, because with oneDNN on the resident figure depends on how
    TensorFlow's CPU allocator happened to place the step's tensors in its
    regions, which varies between processes.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    figures = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, script, *argv], check=True, capture_output=True, text=True, env=env
        ).stdout
        figures.append(
            [None if v == "None" else float(v) for v in out.strip().splitlines()[-1].split()]
        )
    resident = statistics.median(f[0] for f in figures)
    allocators = [f[1] for f in figures if len(f) > 1 and f[1] is not None]
    return Peak(resident, statistics.median(allocators) if allocators else None)


def time_pair(step_a, step_b, x, reps, warmup=2):
    """Interleaved timing; returns the median seconds of each."""
    return tuple(time_many([step_a, step_b], x, reps, warmup))
