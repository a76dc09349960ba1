"""``symconv contact``: protein contact maps."""

from __future__ import annotations

import os

from keras_symconv.cli import pairs
from keras_symconv.cli._common import THRESHOLD_HELP, add_length, add_tiling, log_line, stems
from keras_symconv.inference import load_model, make_predictor
from keras_symconv.plotting import heatmap
from keras_symconv.tasks import TASKS


def cmd_predict(args):
    from keras_symconv.data.protein import write_casp_rr

    task = TASKS["contact"]
    examples = task.read(args.inputs, args, sequences=True)
    if not examples:
        raise ValueError("no chains to predict (check --length)")
    model = load_model(args.model, task)
    predict = make_predictor(model, task, args.tile, args.tile_size, log=log_line)
    os.makedirs(args.out, exist_ok=True)
    stem = stems()
    for example in examples:
        prob = predict(example)
        sequence = example.sequence or _sequence_from_features(example.sequence_features)
        base = os.path.join(args.out, stem(example.name))
        write_casp_rr(base + ".rr", example.name, sequence, prob, top=args.top)
        if not args.no_png:
            maps, titles = [prob], [f"predicted ({len(example)} residues)"]
            if example.has_structure:
                maps, titles = [task.native(example), *maps], ["native", *titles]
            heatmap(base + ".png", maps, titles, example.name)
        source = "no alignment"
        if example.alignment:
            a = example.alignment
            source = f"alignment {a['path']} (row {a['row']}, identity {a['identity']:.2f})"
        print(f"{example.name}: {len(example)} residues, {source} -> {base}.rr", flush=True)
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
    p.add_argument(
        "inputs",
        nargs="+",
        help="FASTA files (.fa, .fasta, .faa: sequences alone) or structure files "
        "(.json, .jsonl, .pdb, .pdb.gz, .cif, .cif.gz) or folders of them",
    )
    p.add_argument(
        "--alignment",
        metavar="FILE",
        help="aligned FASTA of the one input sequence, for its co-evolution features",
    )
    p.add_argument("--top", type=int, default=None, help="at most this many RR lines")
    add_length(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    p.add_argument("--no-png", action="store_true", help="skip the heatmaps")
    add_tiling(p)
    p.set_defaults(func=cmd_predict)
    pairs.add_evaluate(cmds, "contact")
