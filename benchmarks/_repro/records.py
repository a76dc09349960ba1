"""Files, logs, reports and figures of the reproduction runs."""

from __future__ import annotations

import json
import os
import time

import numpy as np


def write_json(path, obj):
    """Write ``obj`` as JSON atomically (a reader never sees half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(obj, handle, indent=1, default=float)
    os.replace(tmp, path)


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as handle:
        return json.load(handle)


def machine():
    """One line naming the machine (CPU model included) and the software, for the logs."""
    from timing import machine as describe

    return describe()


def mean_sd(values, digits=3):
    """``"m ± s"`` over seeds (sample s.d.), or the one value."""
    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def log(path, text):
    """Print ``text`` and append it to the log file ``path``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    line = f"[{stamp}] {text}"
    print(line, flush=True)
    with open(path, "a") as handle:
        handle.write(line + "\n")


def log_start(work, script, argv):
    """Log the command that starts training in ``work`` (read back by :func:`start_commands`)."""
    command = " ".join([f"benchmarks/{script}", *argv])
    log(os.path.join(work, "train.log"), f"start: {command}; {machine()}")


def collect_results(work, out):
    """Every finished run's ``result.json``, kept in the report folder across machines.

    The work folder (checkpoints, outside the repository) does not outlive
    the machine it was made on; the report folder is in the repository. So
    each ``result.json`` found under ``work`` is copied to the same relative
    place under ``out/runs``, and the lines of ``work/train.log`` are added
    to ``out/runs/train.log`` (each line once, in order); runs kept there
    earlier are read back from there. A run in ``work`` replaces its kept
    copy. Returns ``{relative folder: result}``, sorted by folder.
    """
    kept = os.path.join(out, "runs")
    found = {}
    for base in (kept, work):
        for root, _, names in os.walk(base):
            if "result.json" in names:
                found[os.path.relpath(root, base)] = (
                    base,
                    read_json(os.path.join(root, "result.json")),
                )
    for relative, (base, result) in found.items():
        if base == work:
            os.makedirs(os.path.join(kept, relative), exist_ok=True)
            write_json(os.path.join(kept, relative, "result.json"), result)
    source = os.path.join(work, "train.log")
    if os.path.exists(source):
        os.makedirs(kept, exist_ok=True)
        target = os.path.join(kept, "train.log")
        seen = set()
        if os.path.exists(target):
            with open(target) as handle:
                seen = set(handle.read().splitlines())
        with open(source) as handle:
            new = [line for line in handle.read().splitlines() if line not in seen]
        with open(target, "a") as handle:
            handle.writelines(line + "\n" for line in new)
    return {relative: found[relative][1] for relative in sorted(found)}


def start_commands(out):
    """The commands that started the runs kept in ``out/runs/train.log``.

    Each once, in the order first started, without the machine part of the
    ``start:`` line (see :func:`log`), for the report's header: the report
    itself may be written by a ``--report`` call that trained nothing.
    """
    path = os.path.join(out, "runs", "train.log")
    commands = []
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                _, marker, rest = line.partition("] start: ")
                command = rest.split("; ")[0].strip()
                if marker and command not in commands:
                    commands.append(command)
    return commands


def command_lines(script, argv, out):
    """Report header lines: this call's command and those that trained the kept runs."""
    started = start_commands(out)
    return [
        f"Report: `{' '.join(['python', f'benchmarks/{script}', *argv])}`",
        "Runs started with: "
        + ("; ".join(f"`python {c}`" for c in started) or "none kept yet")
        + " (see `runs/train.log`).",
    ]
