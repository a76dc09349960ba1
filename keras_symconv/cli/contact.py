"""``symconv contact``: protein contact maps."""

from __future__ import annotations

import os

from keras_symconv.cli import pairs
from keras_symconv.cli._common import THRESHOLD_HELP, add_length, stems
from keras_symconv.inference import load_model, make_predictor
from keras_symconv.plotting import heatmap
from keras_symconv.tasks import TASKS


def cmd_predict(args):
    from keras_symconv.data.protein import write_casp_rr

    task = TASKS["contact"]
    model = load_model(args.model, task)
    predict = make_predictor(model, task)
    os.makedirs(args.out, exist_ok=True)
    stem = stems()
    for example in task.read(args.inputs, args):
        prob = predict(example)
        sequence = _sequence_from_features(example.sequence_features)
        base = os.path.join(args.out, stem(example.name))
        write_casp_rr(base + ".rr", example.name, sequence, prob, top=args.top)
        if not args.no_png:
            heatmap(
                base + ".png",
                [task.native(example), prob],
                ["native", f"predicted ({len(example)} residues)"],
                example.name,
            )
        print(f"{example.name}: {len(example)} residues -> {base}.rr", flush=True)
    return 0


def _sequence_from_features(features_1d):
    from keras_symconv.data.protein import AMINO_ACIDS

    letters = AMINO_ACIDS + "X"
    return "".join(letters[k] for k in features_1d[:, :21].argmax(1))


def add_parser(sub):
    """Add ``symconv contact`` and its commands."""
    cmds = sub.add_parser("contact", help="protein contact maps")
    cmds = cmds.add_subparsers(dest="command", required=True)
    pairs.add_commands(cmds, "contact")
    p = cmds.add_parser("predict", help="predict pair maps")
    p.add_argument("model", help="a .keras file written by 'symconv contact train'")
    p.add_argument("inputs", nargs="+", help=".json / .pdb files or folders")
    p.add_argument("--top", type=int, default=None, help="at most this many RR lines")
    add_length(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    p.add_argument("--no-png", action="store_true", help="skip the heatmaps")
    p.set_defaults(func=cmd_predict)
    pairs.add_evaluate(cmds, "contact")
