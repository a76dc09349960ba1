"""CosRec against SCosRec (the paper's Table I protocol) on Gowalla check-ins.

The paper's Table I is on MovieLens-1M; the data here is Gowalla in
CosRec's preprocessing (``../shared/data/recsys/gowalla``), and only the later
~30 % of each user's history is available there (CosRec's validation and
test files). So each user's available sequence (``validation.txt`` then
``test.txt``) is split again by time, 70 / 10 / 20 % per user
(:func:`keras_symconv.data.split_by_time`): the models train on the first
part, the epoch is chosen on the validation MAP, and the test part is scored
once with the chosen model, from the last 5 items of train + validation,
ranking every item except those of train + validation (CosRec's
evaluation, :func:`keras_symconv.models.evaluate_recommender`).

Both models train side by side with the same seeds, data and batches (one
epoch of each in turn, checkpointed; run the same command again to resume;
``_repro``). Hyperparameters are CosRec's: d = 50, L = 5, T = 3, 3
negatives per target, batch 512, Adam 1e-3, weight decay 5e-6, dropout 0.5.

    python benchmarks/reproduce_scosrec.py --epochs 30
    python benchmarks/reproduce_scosrec.py --report      # tables only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _repro import (  # noqa: E402
    Run,
    collect_results,
    command_lines,
    deadline,
    log,
    machine,
    mean_sd,
    parse,
    run_script,
    train_log,
    train_side_by_side,
    write_json,
)

GOWALLA = os.path.join(HERE, "..", "..", "shared", "data", "recsys", "gowalla")
MODELS = ("cosrec", "scosrec")
TITLES = {"cosrec": "CosRec", "scosrec": "SCosRec"}
#: Table I of the paper (MovieLens-1M, not this data): trainable parameters and MAP.
PAPER = {"cosrec": (1_983_000, 0.1883), "scosrec": (1_730_000, 0.1970)}
KEYS = ("map", "precision@1", "precision@5", "precision@10", "recall@1", "recall@5", "recall@10")
HEADERS = ("MAP", "Prec@1", "Prec@5", "Prec@10", "Recall@1", "Recall@5", "Recall@10")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=GOWALLA, help="folder with validation.txt and test.txt")
    p.add_argument(
        "--work",
        default=os.path.expanduser("~/.cache/keras-symconv/reproduce_scosrec"),
        help="checkpoint folder (outside the repository; reuse it to resume)",
    )
    p.add_argument("--out", default=os.path.join(HERE, "results", "scosrec"))
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=512, help="CosRec: 512")
    p.add_argument("--lr", type=float, default=1e-3, help="CosRec: 1e-3")
    p.add_argument("--l2", type=float, default=5e-6, help="CosRec's weight decay: 5e-6")
    p.add_argument("--negatives", type=int, default=3, help="per target (3)")
    p.add_argument("--split", nargs=3, type=float, default=(0.7, 0.1, 0.2))
    p.add_argument("--validate-every", type=int, default=1)
    p.add_argument("--stop-after", type=float, default=None, metavar="MINUTES")
    p.add_argument("--limit-users", type=int, default=None, help="only the first N users (smoke)")
    p.add_argument("--report", action="store_true", help="only write the report")
    return parse(p, argv)


def load_split(args):
    from keras_symconv.data import RecSplit, read_interactions, split_by_time

    files = [os.path.join(args.data, name) for name in ("validation.txt", "test.txt")]
    for path in files:
        if not os.path.exists(path):
            raise SystemExit(f"{path}: not found (see ../shared/data/README.md)")
    split = split_by_time(read_interactions(files), args.split)
    if args.limit_users:
        n = args.limit_users
        split = RecSplit(split.train[:n], split.valid[:n], split.test[:n], n, split.num_items)
    return split


def settings(args, split):
    return {
        "data": os.path.relpath(args.data, os.path.join(HERE, "..")),
        "split": list(args.split),
        "users": split.num_users,
        "items": split.num_items - 1,
        "interactions": {
            part: int(sum(len(s) for s in getattr(split, part)))
            for part in ("train", "valid", "test")
        },
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "l2": args.l2,
        "negatives_per_target": args.negatives,
        "limit_users": args.limit_users,
    }


def train_all(args, split):
    import keras
    from keras_symconv.models import build_cosrec, build_scosrec, evaluate_recommender

    from keras_symconv.data import rec_training_dataset
    from keras_symconv.losses import SampledBinaryCrossentropy

    logfile = train_log(args)
    stop = deadline(args)
    builders = {"cosrec": build_cosrec, "scosrec": build_scosrec}

    def build(kind):
        return builders[kind](split.num_users, split.num_items, l2=args.l2)

    def validation(model):
        figures = evaluate_recommender(model, split, "valid")
        return {"selection": figures["map"], **figures}

    for seed in args.seeds:
        runs = [
            Run(
                os.path.join(args.work, f"seed{seed}", kind),
                kind,
                seed,
                build,
                args.lr,
                loss=SampledBinaryCrossentropy,
            )
            for kind in args.models
        ]

        def batches(epoch, seed=seed):
            ds, _ = rec_training_dataset(
                split.train,
                split.num_items,
                negatives=args.negatives,
                batch_size=args.batch_size,
                seed=seed,
                epoch=epoch,
            )
            return ds

        _, steps = rec_training_dataset(split.train, split.num_items, batch_size=args.batch_size)
        finished = train_side_by_side(
            runs, args.epochs, batches, steps, validation, args.validate_every, stop, logfile
        )
        if not finished:
            return False
        for run in runs:
            if run.needs_result():
                finish(run, args, split, logfile)
    keras.backend.clear_session()
    return True


def finish(run, args, split, logfile):
    """Score the validation-chosen model on the test part, once."""
    from keras_symconv.models import evaluate_recommender

    model, result = run.best_model()
    start = time.perf_counter()
    test = evaluate_recommender(model, split, "test")
    seconds = time.perf_counter() - start
    result.update(
        test=test,
        valid={k: v for k, v in run.state["best"].items() if k not in ("epoch", "selection")},
        valid_curve=[h["valid"]["map"] for h in run.state["history"] if "valid" in h],
        loss_curve=[h["loss"] for h in run.state["history"]],
        test_seconds=seconds,
        settings=settings(args, split),
        machine=machine(),
    )
    write_json(run.result_path, result)
    log(
        logfile,
        f"seed {run.seed} {run.kind}: best epoch {result['best_epoch']}, "
        f"test MAP {test['map']:.4f} ({test['users']} users, {seconds:.1f} s)",
    )


def report(args):
    os.makedirs(args.out, exist_ok=True)
    runs = collect_results(args.work, args.out)
    found = {}
    for kind in args.models:
        for seed in sorted(args.seeds):
            result = runs.get(os.path.join(f"seed{seed}", kind))
            if result:
                found.setdefault(kind, []).append(result)
    if not found:
        print("no finished runs to report")
        return
    every = [r for results in found.values() for r in results]
    any_result = every[0]
    s = any_result["settings"]
    differ = sorted({json.dumps(r["settings"], sort_keys=True) for r in every})
    if len(differ) > 1:
        raise SystemExit(
            "the runs of --seeds " + " ".join(map(str, args.seeds)) + " were trained with "
            "different settings, so they cannot be pooled: " + "; ".join(differ)
        )
    lines = [
        "# CosRec vs SCosRec on Gowalla (Table I protocol)",
        "",
        f"Data: `{s['data']}` (validation.txt then test.txt per user, the later ~30 % of "
        f"each history), split by time per user {s['split']}: {s['users']:,} users, "
        f"{s['items']:,} items, {s['interactions']['train']:,} / "
        f"{s['interactions']['valid']:,} / {s['interactions']['test']:,} interactions "
        "(train / validation / test).",
        f"Settings: {s['epochs']} epochs, batch {s['batch_size']}, Adam {s['lr']}, "
        f"weight decay {s['l2']}, {s['negatives_per_target']} negatives per target; "
        "epoch chosen on the validation MAP; seeds "
        + ", ".join(str(r["seed"]) for r in next(iter(found.values())))
        + (f"; first {s['limit_users']} users only (smoke)" if s.get("limit_users") else "")
        + ".",
        "Machine: " + "; ".join(sorted({r["machine"] for r in every})) + ".",
        *command_lines("reproduce_scosrec.py", args.argv, args.out),
        "",
        "Test part (mean ± s.d. over seeds where more than one):",
        "",
        "| Model | Trainable params | " + " | ".join(HEADERS) + " | Best epoch | s / epoch |",
        "|---|---|" + "---|" * len(HEADERS) + "---|---|",
    ]
    for kind, results in found.items():
        cells = [mean_sd([r["test"][k] for r in results], 4) for k in KEYS]
        lines.append(
            f"| {TITLES[kind]} | {results[0]['trainable_params']:,} | "
            + " | ".join(cells)
            + f" | {', '.join(str(r['best_epoch']) for r in results)}"
            + f" | {mean_sd([r['seconds_per_epoch'] for r in results], 1)} |"
        )
    lines += [
        "",
        "Validation part, at the chosen epoch:",
        "",
        "| Model | " + " | ".join(HEADERS) + " |",
        "|---|" + "---|" * len(HEADERS),
    ]
    for kind, results in found.items():
        cells = [mean_sd([r["valid"][k] for r in results], 4) for k in KEYS]
        lines.append(f"| {TITLES[kind]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The paper's Table I (MovieLens-1M, a different data set: only the parameter",
        "counts carry over; ours are for this data's user and item counts):",
        "",
        "| Model | Trainable params (ML-1M) | MAP (ML-1M) |",
        "|---|---|---|",
    ]
    for kind, (params, map_) in PAPER.items():
        lines.append(f"| {TITLES[kind]} | {params / 1e6:.3f}M | {map_:.4f} |")
    lines += ["", "Validation MAP per epoch (seed " + str(any_result["seed"]) + "):", ""]
    curves = {k: v[0]["valid_curve"] for k, v in found.items()}
    longest = max(len(c) for c in curves.values())
    lines.append("| Epoch | " + " | ".join(TITLES[k] for k in curves) + " |")
    lines.append("|---|" + "---|" * len(curves))
    for e in range(longest):
        cells = [f"{c[e]:.4f}" if e < len(c) else "" for c in curves.values()]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "tables.md"), "w") as handle:
        handle.write(text)
    print(text)


def main(argv=None):
    args = parse_args(argv)
    return run_script(
        "reproduce_scosrec.py",
        args,
        lambda: train_all(args, load_split(args)),
        lambda: report(args),
    )


if __name__ == "__main__":
    sys.exit(main())
