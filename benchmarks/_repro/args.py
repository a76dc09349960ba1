"""Command-line options shared by the reproduction scripts."""

from __future__ import annotations

import os

from keras_symconv.tasks import MODEL_KINDS

#: The benchmarks folder (reports go to its results/).
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The model kinds, in the order the reproductions train and report them.
MODELS = tuple(sorted(MODEL_KINDS))


def add_run_arguments(parser, name, epochs, crop, paper_crop):
    """The options every reproduction script has (checkpoints in ``~/.cache``)."""
    p = parser
    p.add_argument(
        "--work",
        default=os.path.expanduser(f"~/.cache/keras-symconv/reproduce_{name}"),
        help="checkpoint folder (outside the repository; reuse it to resume)",
    )
    p.add_argument("--out", default=os.path.join(HERE, "results", name), help="report folder")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--crop", type=int, default=crop, help=f"training window (paper: {paper_crop})")
    p.add_argument("--batch-size", type=int, default=10, help="paper: 10")
    p.add_argument("--positive-weight", type=float, default=5.0, help="paper: 5")
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=0.9,
        help="batch-norm momentum (as the symconv tool; Keras' 0.99 settles too slowly here)",
    )
    p.add_argument(
        "--validate-every", type=int, default=1, help="validate every N epochs (and the last)"
    )
    p.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop cleanly (between epochs) after this long; run again to resume",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="only the first N records of each set (smoke)"
    )
    p.add_argument("--report", action="store_true", help="only write the report")
    add_prior_argument(p)


def add_prior_argument(parser):
    parser.add_argument(
        "--no-output-prior",
        dest="output_prior",
        action="store_false",
        help="start the output logits at 0 as the paper (default: at the log-odds of the "
        "constant that minimizes the weighted loss on the training crops, for every model)",
    )


def pin(runs, key, value, legacy, option):
    """Record ``value`` under ``key`` in each run's state; never resume under another.

    ``legacy`` is what runs made before the option existed used.
    """
    for run in runs:
        prior = run.state.setdefault(key, legacy if run.state["epochs_done"] else value)
        if prior != value:
            raise SystemExit(
                f"{run.folder}: trained with {option} {prior}, not {value}; resume it with "
                "that, or give another --work"
            )
