"""The set-up every reproduction script shares: arguments, deadline, ``main``."""

from __future__ import annotations

import os
import sys
import time

from _repro.records import log_start


def parse(parser, argv=None):
    """Parse ``argv`` (default: the command line), keeping it as ``args.argv`` for the logs."""
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def deadline(args):
    """``time.time()`` after which no epoch is started (``--stop-after``), or None."""
    return None if args.stop_after is None else time.time() + 60 * args.stop_after


def train_log(args):
    """The training log of the work folder (read back by the reports)."""
    return os.path.join(args.work, "train.log")


def run_script(script, args, train, report):
    """The body of every ``reproduce_*.py`` ``main``.

    Unless ``--report`` is given, logs the command and calls ``train()``,
    which returns False when ``--stop-after`` stopped it; then calls
    ``report()``. Returns the exit status: 0 when the report is written,
    3 when training stopped early (run the same command again to resume).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(args.work, exist_ok=True)
    if not args.report:
        log_start(args.work, script, args.argv)
        if not train():
            return 3
    report()
    return 0
