"""Reproduce the paper's Table II on the 16S rRNA split, with the MFE baseline.

Trains the RNA CNN, the CNN with symmetrized output and the SCNN on
``strand16s/train.txt`` (550 sequences), the same seeds and budget for each,
one epoch of each model in turn (see ``_repro``: checkpoints every epoch,
resumes when started again with the same ``--work`` folder). The epoch and
the decoding threshold are chosen on ``valid.txt`` (28 whole sequences); the
test set (35 whole sequences, 7 families x 5) is scored once at the end.
ViennaRNA's ``RNA.fold`` (minimum free energy; ``pip install
'keras-symconv[vienna]'``) is scored on the same test sequences.

    python benchmarks/reproduce_rna.py --epochs 6 --crop 96 --seeds 0
    python benchmarks/reproduce_rna.py --report      # tables and figure only

Every deviation from the paper's protocol is a flag here and is written into
the report: crop length (paper: 500), epochs (paper: 500), the number of
training sequences scored for the "train" row (paper: all 550).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _repro import (  # noqa: E402
    MODELS,
    RnaItems,
    Run,
    add_run_arguments,
    collect_results,
    command_lines,
    deadline,
    log,
    machine,
    mean_sd,
    model_builder,
    parse,
    pin,
    predict_maps,
    prior_logit,
    read_json,
    run_script,
    train_log,
    train_side_by_side,
    write_json,
)

DATA = os.path.join(HERE, "..", "..", "shared", "data", "rna", "strand16s")
TITLES = {"cnn": "CNN", "cnn-sym": "CNN, symmetrized output", "scnn": "SCNN"}
#: Table II of the paper (V100, 500 epochs of 500-nt crops): PPV, Sen, Acc.
PAPER = {
    "cnn": {"params": 387_798, "train": (0.981, 0.983, 0.982), "valid": (0.853, 0.858, 0.855),
            "test": (0.844, 0.853, 0.849)},
    "scnn": {"params": 239_198, "train": (0.983, 0.986, 0.985), "valid": (0.862, 0.872, 0.867),
             "test": (0.863, 0.873, 0.868)},
}  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=DATA, help="folder with train.txt, valid.txt, test.txt")
    add_run_arguments(p, "rna", epochs=6, crop=96, paper_crop=500)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam (paper: 2e-3)")
    p.add_argument(
        "--train-eval", type=int, default=20, help="training sequences scored for the train row"
    )
    p.add_argument("--no-vienna", action="store_true", help="skip the ViennaRNA baseline")
    p.add_argument(
        "--figure-sequence",
        default=None,
        help="test sequence name for the heatmap figure (default: first RNase P)",
    )
    return parse(p, argv)


def score(items, maps, threshold):
    from keras_symconv.metrics import pair_metrics

    m = pair_metrics([s.contact_map() for s in items], maps, threshold)
    return {
        "ppv": m["ppv"],
        "sensitivity": m["sensitivity"],
        "accuracy": m["accuracy"],
        "selection": m["accuracy"],
        "per_sequence": [list(map(float, s)) for s in m["per_sequence"]],
    }


def read_split(folder):
    from keras_symconv.data import read_structures

    split = {}
    for part in ("train", "valid", "test"):
        path = os.path.join(folder, f"{part}.txt")
        if not os.path.exists(path):
            raise SystemExit(f"{path}: not found (give --data)")
        split[part] = read_structures([path])
    return split


def builder(args, output_bias):
    """``kind -> model`` with this run's settings."""
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    return model_builder(build_rna_scnn, build_rna_cnn, args.bn_momentum, output_bias)


def training_batches(train, args, seed, epoch):
    """One pass over the training set, seeded by (seed, epoch), crops of static size."""
    import tensorflow as tf

    from keras_symconv.data.pipeline import rna_training_dataset

    dataset = rna_training_dataset(train, args.batch_size, args.crop, seed=seed * 100_003 + epoch)
    if min(len(s) for s in train) >= args.crop:
        # Every window is exactly --crop long: say so, so that the layers see
        # a static side (and compute="auto" can use the triangular path).
        c = args.crop
        dataset = dataset.map(
            lambda x, y: (tf.ensure_shape(x, (None, c, 5)), tf.ensure_shape(y, (None, c, c, 1)))
        )
    return dataset


def train_all(args, split):
    train = split["train"]
    steps = -(-len(train) // args.batch_size)
    logfile = train_log(args)
    stop = deadline(args)
    for seed in args.seeds:
        bias = 0.0
        if args.output_prior:
            bias = prior_logit(training_batches(train, args, seed, 0), args.positive_weight)
        runs = [
            Run(os.path.join(args.work, f"seed{seed}", kind), kind, seed,
                builder(args, bias), args.lr, args.positive_weight)
            for kind in args.models
        ]  # fmt: skip
        pin(runs, "output_bias", bias, 0.0, "output bias")
        finished = train_side_by_side(
            runs,
            args.epochs,
            lambda epoch, seed=seed: training_batches(train, args, seed, epoch),
            steps,
            (split["valid"], RnaItems, score),
            args.validate_every,
            stop,
            logfile,
        )
        if not finished:
            return False
        for run in runs:
            if run.needs_result():
                finish(run, args, split, logfile)
    return True


def finish(run, args, split, logfile):
    """Score the chosen model (best validation epoch and threshold) once."""
    model, result = run.best_model()
    best = run.state["best"]
    rng = np.random.default_rng(run.seed)
    n = min(args.train_eval, len(split["train"]))
    pick = sorted(rng.choice(len(split["train"]), n, replace=False))
    subsets = {
        "train": [split["train"][k] for k in pick],
        "valid": split["valid"],
        "test": split["test"],
    }
    result.update(
        {
            "train_sequences_scored": [s.name for s in subsets["train"]],
            "settings": {
                k: getattr(args, k)
                for k in (
                    "crop",
                    "batch_size",
                    "lr",
                    "positive_weight",
                    "bn_momentum",
                    "validate_every",
                    "limit",
                )
            },
        }
    )
    result["settings"]["output_bias"] = run.state["output_bias"]
    for part, items in subsets.items():
        maps, seconds = predict_maps(model, items, RnaItems)
        result[part] = score(items, maps, best["threshold"])
        result[part + "_at_0.5"] = {
            k: v for k, v in score(items, maps, 0.5).items() if k != "per_sequence"
        }
        if part == "test":
            result["inference_seconds_per_sequence"] = float(np.mean(seconds))
            result["test_lengths"] = [len(s) for s in items]
            result["test_families"] = [s.family for s in items]
            result["test_names"] = [s.name for s in items]
            name = args.figure_sequence or next(s.name for s in items if s.family == "rnasep")
            k = [s.name for s in items].index(name)
            np.save(os.path.join(run.folder, "figure_map.npy"), maps[k].astype(np.float32))
            result["figure_sequence"] = name
    write_json(run.result_path, result)
    log(
        logfile,
        f"seed {run.seed} {run.kind}: test PPV/Sen/Acc {result['test']['ppv']:.3f}/"
        f"{result['test']['sensitivity']:.3f}/{result['test']['accuracy']:.3f} "
        f"(epoch {best['epoch']}, threshold {best['threshold']})",
    )


def vienna(split, out):
    """ViennaRNA minimum-free-energy structures of the test sequences, scored."""
    path = os.path.join(out, "vienna.json")
    names = [s.name for s in split["test"]]
    cached = read_json(path)
    if cached is not None and cached.get("test_names") == names:
        return cached
    try:
        import RNA
    except ImportError:
        print("ViennaRNA not installed (pip install 'keras-symconv[vienna]'); baseline skipped")
        return None
    from keras_symconv.data.rna import parse_dot_bracket
    from keras_symconv.metrics import pair_scores

    per_sequence, seconds = [], []
    for s in split["test"]:
        start = time.perf_counter()
        structure, _ = RNA.fold(s.sequence)
        seconds.append(time.perf_counter() - start)
        partners = parse_dot_bracket(structure, where=s.name)
        pairs = [(i, int(j)) for i, j in enumerate(partners) if j > i]
        per_sequence.append(list(pair_scores(s.pairs, pairs)))
    scores = np.array(per_sequence)
    result = {
        "version": RNA.__version__,
        "test": {
            "ppv": float(scores[:, 0].mean()),
            "sensitivity": float(scores[:, 1].mean()),
            "accuracy": float(scores[:, 2].mean()),
            "per_sequence": per_sequence,
        },
        "seconds_per_sequence": float(np.mean(seconds)),
        "test_families": [s.family for s in split["test"]],
        "test_names": names,
    }
    write_json(path, result)
    return result


def report(args, split):
    """Markdown tables over every finished run, and the heatmap figure."""
    os.makedirs(args.out, exist_ok=True)
    results = {}
    runs = collect_results(args.work, args.out)
    for kind in MODELS:
        for seed in sorted(args.seeds):
            r = runs.get(os.path.join(f"seed{seed}", kind))
            if r is not None:
                results.setdefault(kind, []).append(r)
    base = None if args.no_vienna else vienna(split, args.out)
    settings = sorted(
        {json.dumps(r.get("settings"), sort_keys=True) for rs in results.values() for r in rs}
    )
    lines = [
        "# RNA secondary structure, 16S rRNA split (Table II)",
        "",
        f"Machine: {machine()}; date {time.strftime('%Y-%m-%d')}.",
        *command_lines("reproduce_rna.py", args.argv, args.out),
        "Training settings of the runs below (paper: crop 500, batch 10, lr 2e-3, weight 5, "
        "500 epochs): " + ("; ".join(settings) or "no finished run yet") + ".",
        "",
        "| model | seeds | trainable params | epochs (best) | threshold | train PPV/Sen/Acc"
        " | valid PPV/Sen/Acc | test PPV/Sen/Acc | s/epoch | inference s/seq |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, rs in results.items():
        cells = []
        for part in ("train", "valid", "test"):
            cells.append(
                " / ".join(
                    mean_sd([r[part][m] for r in rs]) for m in ("ppv", "sensitivity", "accuracy")
                )
            )
        lines.append(
            f"| {TITLES[kind]} | {','.join(str(r['seed']) for r in rs)} | "
            f"{rs[0]['trainable_params']:,} | {rs[0]['epochs']} "
            f"({','.join(str(r['best_epoch']) for r in rs)}) | "
            f"{','.join(str(r['threshold']) for r in rs)} | {' | '.join(cells)} | "
            f"{mean_sd([r['seconds_per_epoch'] for r in rs], 0)} | "
            f"{mean_sd([r['inference_seconds_per_sequence'] for r in rs], 2)} |"
        )
    if base:
        t = base["test"]
        lines.append(
            f"| ViennaRNA {base['version']} `RNA.fold` (MFE) | - | - | - | - | - | - | "
            f"{t['ppv']:.3f} / {t['sensitivity']:.3f} / {t['accuracy']:.3f} | - | "
            f"{base['seconds_per_sequence']:.2f} |"
        )
    for kind, paper in PAPER.items():
        lines.append(
            f"| paper: {TITLES[kind]} | - | {paper['params']:,} | 500 | 0.5 | "
            + " | ".join(
                " / ".join(f"{v:.3f}" for v in paper[p]) for p in ("train", "valid", "test")
            )
            + " | - | - |"
        )
    # Per-family test accuracy.
    families = sorted({s.family for s in split["test"]})
    lines += ["", "Test accuracy per family (mean over the 5 sequences of each):", ""]
    lines.append("| model | " + " | ".join(families) + " |")
    lines.append("|---|" + "---|" * len(families))
    rows = [(TITLES[k], rs) for k, rs in results.items()]
    if base:
        rows.append((f"ViennaRNA {base['version']}", [base]))
    for title, rs in rows:
        cells = []
        for fam in families:
            accs = []
            for r in rs:
                pairs = zip(r["test"]["per_sequence"], r["test_families"], strict=True)
                accs.append(np.mean([s[2] for s, f in pairs if f == fam]))
            cells.append(mean_sd(accs))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "tables.md"), "w") as handle:
        handle.write(text)
    print(text)
    figure(args, split, results)


def figure(args, split, results):
    """The Fig. 2 analogue: native map beside CNN and SCNN predictions (seed of the first run)."""
    if "cnn" not in results or "scnn" not in results:
        return
    from keras_symconv.plotting import heatmap

    seed = results["scnn"][0]["seed"]
    name = results["scnn"][0]["figure_sequence"]
    item = next(s for s in split["test"] if s.name == name)
    maps, titles = [item.contact_map()], ["native"]
    for kind in ("cnn", "scnn"):
        path = os.path.join(args.work, f"seed{seed}", kind, "figure_map.npy")
        if not os.path.exists(path):
            print(f"heatmaps.png left as it is: {path} (the predicted map) is not here")
            return
        maps.append(np.load(path))
        titles.append(TITLES[kind])
    heatmap(
        os.path.join(args.out, "heatmaps.png"),
        maps,
        titles,
        suptitle=f"{os.path.basename(name)} ({len(item)} nt, test set), seed {seed}",
    )


def main(argv=None):
    args = parse_args(argv)
    split = read_split(args.data)
    if args.limit:
        split = {part: items[: args.limit] for part, items in split.items()}
    return run_script(
        "reproduce_rna.py", args, lambda: train_all(args, split), lambda: report(args, split)
    )


if __name__ == "__main__":
    sys.exit(main())
