"""The CPU's model name, for the benchmarks' logs (no TensorFlow, any backend)."""

import platform


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``), or the architecture."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
