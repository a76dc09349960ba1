"""``symconv rec``: sequential recommendation with CosRec / SCosRec.

    symconv rec train    (--data FILE... [--split 0.7 0.1 0.2] | --train F [--valid F] --test F)
                         --model scosrec|cosrec --out DIR
    symconv rec evaluate MODEL [the same data options] [--part test|valid]

``train`` splits each user's history by time (or takes the files as split),
trains on CosRec's windows with sampled negatives, evaluates MAP on the
validation part after each epoch and keeps the best model; then scores the
test part with it. It writes ``model.keras`` (the best), ``savedmodel/`` (the
all-items scorer for serving: ``serve(user, sequence) -> (batch, items)``),
``vocabulary.json`` (the raw -> dense id maps and the data options, which
``evaluate`` reuses) and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import os

from keras_symconv.fitting import read_rec_split, train_recommender
from keras_symconv.inference import load_recommender

REC_MODELS = ("scosrec", "cosrec")
METRIC_KEYS = (
    "map",
    "precision@1",
    "precision@5",
    "precision@10",
    "recall@1",
    "recall@5",
    "recall@10",
)


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_data_args(p):
    group = p.add_argument_group("data (one of --data or --train/--test)")
    group.add_argument(
        "--data",
        nargs="+",
        metavar="FILE",
        help="'user item [rating]' files, each user's lines in time order; several files are "
        "concatenated per user in the order given, then split by time (--split)",
    )
    group.add_argument(
        "--split",
        nargs=3,
        type=float,
        metavar=("TRAIN", "VALID", "TEST"),
        default=None,
        help="per-user time split of --data (default 0.7 0.1 0.2, Caser/CosRec's)",
    )
    group.add_argument("--train", metavar="FILE", help="an already split training file")
    group.add_argument("--valid", metavar="FILE", help="its validation file (optional)")
    group.add_argument("--test", metavar="FILE", help="its test file")


def _line(name, figures):
    return f"{name:10s}" + "".join(f"{figures[k]:>13.4f}" for k in METRIC_KEYS)


def _header():
    return f"{'':10s}" + "".join(f"{k:>13s}" for k in METRIC_KEYS)


def cmd_train(args):
    summary = train_recommender(args, verbose=args.verbose)
    print(
        f"{summary['model']}: {summary['trainable_params']:,} trainable parameters, "
        f"{summary['users']:,} users, {summary['items']:,} items, "
        f"{summary['seconds_per_epoch']:.1f} s per epoch, best epoch {summary['best_epoch']}"
    )
    print(_header())
    if summary["valid"]:
        print(_line("valid", summary["valid"]))
    print(_line("test", summary["test"]))
    print(f"wrote {args.out}/model.keras, savedmodel/, vocabulary.json, run.json")
    return 0


def cmd_evaluate(args):
    from keras_symconv.models import evaluate_recommender

    vocabulary_path = args.vocabulary or os.path.join(
        os.path.dirname(os.path.abspath(args.model)), "vocabulary.json"
    )
    if not os.path.exists(vocabulary_path):
        raise ValueError(
            f"{vocabulary_path}: no vocabulary (written by 'symconv rec train'); see --vocabulary"
        )
    with open(vocabulary_path) as handle:
        vocabulary = json.load(handle)
    if not (args.data or args.train):
        # the data the model was trained on, as recorded
        args.data = vocabulary.get("data")
        args.train, args.valid, args.test = (vocabulary.get(k) for k in ("train", "valid", "test"))
    if args.data and args.split is None and "split" in vocabulary:
        args.split = vocabulary["split"]
    users, items = vocabulary["users"], vocabulary["items"]
    split, user_map, item_map, _ = read_rec_split(args, users, items)
    for kind, before, after in (("user", users, user_map), ("item", items, item_map)):
        if len(after) > len(before):
            new = [k for k in after if k not in before]
            raise ValueError(
                f"{len(new)} {kind}(s) of the data are not in the model's vocabulary "
                f"({vocabulary_path}), e.g. {new[0]!r}"
            )
    model = load_recommender(args.model)
    figures = evaluate_recommender(model, split, args.part)
    print(f"{args.model}: {args.part} part, {figures['users']:,} users")
    print(_header())
    print(_line(args.part, figures))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0


def add_parser(sub):
    """Add ``rec train`` and ``rec evaluate`` to the ``symconv`` subparsers."""
    cmds = sub.add_parser("rec", help="sequential recommendation (CosRec / SCosRec)")
    cmds = cmds.add_subparsers(dest="command", required=True)

    p = cmds.add_parser("train", help="train CosRec or SCosRec, choose the epoch on validation")
    _add_data_args(p)
    p.add_argument("--model", choices=REC_MODELS, default="scosrec")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=_positive, default=20)
    p.add_argument("--batch-size", type=_positive, default=512, help="CosRec: 512")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam (CosRec: 1e-3)")
    p.add_argument("--l2", type=float, default=5e-6, help="CosRec's weight decay (5e-6)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--sequence-length", type=_positive, default=5, help="L, items read (5)")
    p.add_argument("--targets", type=_positive, default=3, help="T, next items trained on (3)")
    p.add_argument(
        "--negatives", type=_positive, default=3, help="sampled negatives per target (3)"
    )
    p.add_argument("--embedding-dim", type=_positive, default=50, help="d (50)")
    p.add_argument("--evaluate-every", type=_positive, default=1, help="validate every N epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("evaluate", help="MAP, precision and recall at 1, 5, 10 (CosRec's)")
    p.add_argument("model", help="a .keras file written by 'symconv rec train'")
    _add_data_args(p)
    p.add_argument("--part", choices=("test", "valid"), default="test")
    p.add_argument(
        "--vocabulary", metavar="FILE", help="id maps (default: vocabulary.json beside MODEL)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(func=cmd_evaluate)
