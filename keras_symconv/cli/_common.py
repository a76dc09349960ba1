"""Options and helpers shared by the ``symconv rna`` and ``contact`` commands."""

from __future__ import annotations

import os
import re

from keras_symconv.tasks import TASKS

SEQUENCE_SUFFIXES = (".fa", ".fasta", ".fna")


def read_data(args, task):
    """``(train, valid)`` items from --data / --synthetic and --valid / --valid-fraction."""
    if bool(args.data) == bool(args.synthetic):
        raise ValueError("give exactly one of --data and --synthetic")
    structures = task.synthetic(args) if args.synthetic else task.read(args.data, args)
    if args.valid:
        return structures, task.read(args.valid, args)
    if len(structures) < 2:
        raise ValueError("need at least 2 structures to split off a validation part")
    import numpy as np

    order = np.random.default_rng(args.seed).permutation(len(structures))
    n_valid = max(1, int(round(args.valid_fraction * len(structures))))
    valid = [structures[k] for k in sorted(order[:n_valid])]
    train = [structures[k] for k in sorted(order[n_valid:])]
    return train, valid


def _safe_name(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name)).strip("._") or "sequence"


def stems():
    """Unique, file-system-safe file stems for possibly repeated names."""
    seen: dict[str, int] = {}

    def stem(name):
        base = _safe_name(name)
        seen[base] = seen.get(base, 0) + 1
        return base if seen[base] == 1 else f"{base}_{seen[base]}"

    return stem


def read_inputs(paths):
    """``(name, sequence)`` of every record of FASTA files and structure files/folders."""
    from keras_symconv.data import read_fasta_sequences, read_structures

    items = []
    for path in paths:
        if os.path.isfile(path) and os.path.splitext(path)[1].lower() in SEQUENCE_SUFFIXES:
            items.extend(read_fasta_sequences(path))
        else:
            items.extend((r.name, r.sequence) for r in read_structures(path))
    return items


def add_training_args(p, domain):
    rna = domain == "rna"
    src = p.add_argument_group("data")
    src.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="structure files or folders"
        if rna
        else "structure files (.json, .jsonl, .pdb, .pdb.gz, .cif, .cif.gz) or folders",
    )
    if rna:
        src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic RNAs instead")
        src.add_argument(
            "--synthetic-length",
            type=int,
            nargs=2,
            default=(60, 160),
            metavar=("MIN", "MAX"),
            help="length range of synthetic RNAs",
        )
    else:
        p.set_defaults(synthetic=None)
        add_length(src)
    src.add_argument(
        "--valid",
        nargs="+",
        metavar="PATH",
        help="validation files (default: split off --valid-fraction)",
    )
    src.add_argument("--valid-fraction", type=float, default=0.1)
    crop = TASKS[domain].default_crop
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=10, help="global batch (paper: 10)")
    p.add_argument(
        "--crop", type=int, default=crop, help=f"longest training window (paper: {crop})"
    )
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--positive-weight", type=float, default=5.0)
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=0.9,
        help="batch-norm momentum (Keras' default 0.99 needs thousands of steps "
        "before the moving statistics used at inference settle; the "
        "default 0.9 suits short runs)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decoding threshold (default: chosen each epoch on the validation set from "
        "0.10, 0.15, ..., 0.90 and stored in model.keras with the best epoch)",
    )
    p.add_argument(
        "--no-output-prior",
        dest="output_prior",
        action="store_false",
        help="start the output logits at 0, as the paper (default: at the prior log-odds "
        "of a pair in the training crops, for every model)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jit",
        action="store_true",
        help="compile train steps with XLA (works with the BiLSTM models; off by "
        "default because every new crop length compiles anew; see benchmarks/RESULTS.md, "
        "'RNA training step: float32, bfloat16 and XLA')",
    )
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker"),
        default="default",
        help="tf.distribute strategy: mirrored = all local GPUs; multiworker = "
        "several machines described by TF_CONFIG",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))


def add_length(group):
    group.add_argument(
        "--chain",
        metavar="ID",
        help="chain of PDB and mmCIF files (author's chain ID; default: the first)",
    )
    group.add_argument(
        "--alignments",
        metavar="DIR",
        help="folder of aligned FASTA files; each chain takes the one it maps onto "
        "(keras_symconv.data.alignment.find_alignment) for its co-evolution features",
    )
    group.add_argument(
        "--length",
        type=int,
        nargs=2,
        default=(1, 10**9),
        metavar=("MIN", "MAX"),
        help="keep chains of this length range (the paper: 25 100)",
    )


THRESHOLD_HELP = (
    "decoding threshold (default: the one stored in the model, chosen on the validation "
    "set when it was trained; 0.5 for a model that stores none)"
)


def add_tiling(p):
    """``--tile`` and ``--tile-size`` of the predict commands."""
    p.add_argument(
        "--tile",
        choices=("auto", "always", "never"),
        default="auto",
        help="predict the map in tiles (sequence layers once, pair layers tile by tile; "
        "same result): auto = when the whole map would take more than 40%% of the memory "
        "available (default)",
    )
    p.add_argument("--tile-size", type=int, default=1024, metavar="N", help="tile side")


def log_line(text):
    """A progress line of the tool, on stderr."""
    import sys

    print(f"symconv: {text}", file=sys.stderr, flush=True)
