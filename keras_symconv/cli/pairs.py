"""The commands both pair-map applications have: train, compare, evaluate."""

from __future__ import annotations

import json
import os

from keras_symconv.cli._common import THRESHOLD_HELP, add_length, add_training_args, read_data
from keras_symconv.fitting import make_strategy, train_model
from keras_symconv.inference import (
    evaluate_structures,
    load_model,
    make_predictor,
    resolve_threshold,
)
from keras_symconv.plotting import heatmap
from keras_symconv.tasks import MODEL_KINDS, TASKS


def cmd_train(args):
    task = TASKS[args.domain]
    strategy = make_strategy(args.strategy)
    train, valid = read_data(args, task)
    summary, _ = train_model(task, args.model, train, valid, args, args.out, strategy, args.verbose)
    print(json.dumps({k: summary[k] for k in ("model", "trainable_params", "best_valid")}))
    return 0


def cmd_compare(args):
    task = TASKS[args.domain]
    strategy = make_strategy(args.strategy)
    train, valid = read_data(args, task)
    rows, predictors = [], {}
    for kind in args.models:
        print(f"== training {kind} ==", flush=True)
        summary, predictors[kind] = train_model(
            task, kind, train, valid, args, os.path.join(args.out, kind), strategy, args.verbose
        )
        rows.append(summary)
    table = [
        "| model | trainable params | train s/epoch | threshold | valid PPV | valid Sen "
        "| valid Acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["best_valid"]
        table.append(
            f"| {r['model']} | {r['trainable_params']:,} | {r['seconds_per_epoch']:.1f} "
            f"| {r['threshold']:g} | {b['ppv']:.3f} | {b['sensitivity']:.3f} "
            f"| {b['accuracy']:.3f} |"
        )
    text = "\n".join(table)
    print(text)
    example = max(valid, key=len) if args.heatmap_longest else valid[0]
    maps = [task.native(example)] + [predictors[k](example) for k in args.models]
    png = os.path.join(args.out, "heatmaps.png")
    heatmap(png, maps, ["native"] + list(args.models), f"{example.name} (L = {len(example)})")
    with open(os.path.join(args.out, "compare.md"), "w") as handle:
        handle.write(text + "\n")
    with open(os.path.join(args.out, "compare.json"), "w") as handle:
        json.dump(rows, handle, indent=2, default=str)
    print(f"heatmaps: {png}")
    return 0


def cmd_evaluate(args):
    task = TASKS[args.domain]
    model = load_model(args.model, task)
    structures = task.read(args.data, args)
    if not structures:
        raise ValueError("no structures to evaluate")
    threshold, how = resolve_threshold(args.threshold, args.model)
    result = evaluate_structures(
        make_predictor(model, task), structures, threshold, args.strict, task=task
    )
    rows = [("all", list(range(len(structures))))]
    families = sorted({f for f in result["families"] if f})
    for fam in families:
        rows.append((fam, [k for k, f in enumerate(result["families"]) if f == fam]))
    lines = ["| set | n | PPV | Sen | Acc |", "|---|---|---|---|---|"]
    summary = {}
    for label, idx in rows:
        scores = [result["per_sequence"][k] for k in idx]
        ppv, sen, acc = (sum(s[c] for s in scores) / len(scores) for c in range(3))
        summary[label] = {"n": len(idx), "ppv": ppv, "sensitivity": sen, "accuracy": acc}
        lines.append(f"| {label} | {len(idx)} | {ppv:.3f} | {sen:.3f} | {acc:.3f} |")
    decoding = "strict one pair per base" if args.strict else "the paper's (authors') rule"
    print(f"decoding: {decoding}, threshold {threshold:g} ({how})")
    print("\n".join(lines))
    extra = {}
    for key in ("long_L", "long_L/2", "long_L/5", "medium_L", "medium_L/2", "medium_L/5"):
        if key in result:
            extra[key] = result[key]
    if extra:
        print("top-L precision: " + ", ".join(f"{k} {v:.3f}" for k, v in extra.items()))
        summary["all"].update(extra)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "summary": summary,
                    "per_sequence": result["per_sequence"],
                    "names": result["names"],
                },
                handle,
                indent=2,
            )
    return 0


def add_commands(cmds, domain):
    """Add ``train`` and ``compare`` of ``symconv <domain>``."""
    p = cmds.add_parser("train", help="train one model")
    add_training_args(p, domain)
    p.add_argument("--model", choices=MODEL_KINDS, default="scnn")
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("compare", help="train several models on the same data, side by side")
    add_training_args(p, domain)
    p.add_argument("--models", nargs="+", choices=MODEL_KINDS, default=["cnn", "scnn"])
    p.add_argument(
        "--heatmap-longest",
        action="store_true",
        help="plot the longest validation item (default: the first)",
    )
    p.set_defaults(func=cmd_compare)


def add_evaluate(cmds, domain):
    """Add ``evaluate`` of ``symconv <domain>``."""
    p = cmds.add_parser("evaluate", help="the paper's metrics on structure files")
    p.add_argument("model", help="a .keras file" + (" or a preset name" if domain == "rna"
                                                    else ""))  # fmt: skip
    p.add_argument("data", nargs="+", help="structure files or folders")
    p.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    p.add_argument("--strict", action="store_true", help="strict one-pair-per-base decoding")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    if domain == "contact":
        add_length(p)
    p.set_defaults(func=cmd_evaluate)
