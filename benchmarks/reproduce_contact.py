"""Reproduce the paper's Table III (contact maps), with resumable runs.

The contact CNN, the CNN with symmetrized output and the SCNN are trained
side by side (``_repro``: one epoch of each in turn, checkpoints every
epoch, resume by running the same command again) on these experiments:

- ``ts50-25-100``: train on ``cath.json`` chains of 25-100 residues (a
  seeded part of the chains held out for validation), test on the TS50
  chains of 25-100 residues, as in the paper;
- ``ts50-all``: the same with every length;
- ``pfam``: the 40 Pfam domains with 2D features from their alignments
  (mutual information and covariance couplings, APC corrected), k-fold
  cross-validation by domain (each fold's validation part is a seeded part
  of its training domains).

The CATH and TS50 chains have no alignments here: their 2D features are the
sequence-separation channel only (the alignment channels are zero).

    python benchmarks/reproduce_contact.py --experiments ts50-25-100 --epochs 10
    python benchmarks/reproduce_contact.py --report

The epoch is chosen on validation by the top-L/5 precision of long-range
contacts (``--select long_L/5``, the field's headline figure; the decoded
accuracy, ``--select accuracy``, hardly separates epochs here), the decoding
threshold on validation by the decoded accuracy; the test sets are scored
once.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _repro import (  # noqa: E402
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
    run_script,
    train_log,
    train_side_by_side,
    write_json,
)

PROTEIN = os.path.join(HERE, "..", "..", "shared", "data", "protein")
TITLES = {"cnn": "CNN", "cnn-sym": "CNN, symmetrized output", "scnn": "SCNN"}
EXPERIMENTS = ("ts50-25-100", "ts50-all", "pfam")
#: Table III's trainable parameter counts.
PAPER_PARAMS = {"cnn": 2_465_000, "scnn": 1_326_000}
PRECISION_KEYS = ("long_L", "long_L/2", "long_L/5", "medium_L", "medium_L/2", "medium_L/5")
SELECTIONS = ("long_L/5", "accuracy")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--protein", default=PROTEIN, help="folder with cath.json, ts50.json, pfam_domains/"
    )
    add_run_arguments(p, "contact", epochs=10, crop=100, paper_crop=100)
    p.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    p.add_argument("--lr-cnn", type=float, default=1e-3, help="Adam for the CNNs (paper: 1e-3)")
    p.add_argument("--lr-scnn", type=float, default=2e-3, help="Adam for the SCNN (paper: 2e-3)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--folds", type=int, default=5, help="Pfam cross-validation folds")
    p.add_argument(
        "--select",
        choices=SELECTIONS,
        default="long_L/5",
        help="validation figure choosing the epoch (the threshold: decoded accuracy)",
    )
    return parse(p, argv)


def task():
    from keras_symconv.tasks import TASKS

    return TASKS["contact"]


def score(items, maps, threshold, select="accuracy"):
    from keras_symconv.metrics import contact_precision, pair_metrics

    t = task()
    m = pair_metrics([t.native(e) for e in items], maps, threshold)
    precision = [contact_precision(e.contacts, p, e.mask) for e, p in zip(items, maps, strict=True)]
    out = {
        "ppv": m["ppv"],
        "sensitivity": m["sensitivity"],
        "accuracy": m["accuracy"],
        "threshold_selection": m["accuracy"],
        "per_sequence": [list(map(float, s)) for s in m["per_sequence"]],
    }
    for key in PRECISION_KEYS:
        out[key] = float(np.nanmean([p[key] for p in precision]))
    chosen = out[select]
    out["selection"] = chosen if np.isfinite(chosen) else 0.0
    return out


def _split_off(items, fraction, seed, where):
    order = np.random.default_rng(seed).permutation(len(items))
    n_valid = max(1, int(round(fraction * len(items))))
    if n_valid >= len(items):
        raise SystemExit(f"{where}: {len(items)} chains are too few to split off validation")
    valid = [items[k] for k in sorted(order[:n_valid])]
    train = [items[k] for k in sorted(order[n_valid:])]
    return train, valid


def experiments(args):
    """``name -> (train, valid, test)`` of ContactExample lists."""
    from keras_symconv.data.contact import contact_example
    from keras_symconv.data.protein import read_pdb, read_protein_json

    out = {}
    wanted = set(args.experiments)
    if wanted & {"ts50-25-100", "ts50-all"}:
        cath = read_protein_json(os.path.join(args.protein, "cath.json"))
        ts50 = read_protein_json(os.path.join(args.protein, "ts50.json"))
        for name, (lo, hi) in (("ts50-25-100", (25, 100)), ("ts50-all", (1, 10**9))):
            if name not in wanted:
                continue
            train = [contact_example(c) for c in cath if lo <= len(c) <= hi][: args.limit]
            test = [contact_example(c) for c in ts50 if lo <= len(c) <= hi][: args.limit]
            train, valid = _split_off(train, args.valid_fraction, 0, name)
            out[name] = (train, valid, test)
    if "pfam" in wanted:
        from keras_symconv.data.alignment import find_alignment, read_alignment

        folder = os.path.join(args.protein, "pfam_domains")
        pdbs = sorted(os.listdir(os.path.join(folder, "pdb")))[: args.limit]
        alignments = [
            read_alignment(os.path.join(folder, "aln", n))
            for n in sorted(os.listdir(os.path.join(folder, "aln")))
        ]
        domains = []
        for n in pdbs:
            chain = read_pdb(os.path.join(folder, "pdb", n))
            _, codes, _ = find_alignment(alignments, chain.sequence)
            domains.append(contact_example(chain, codes))
        order = np.random.default_rng(0).permutation(len(domains))
        folds = np.array_split(order, args.folds)
        for k, fold in enumerate(folds):
            test = [domains[i] for i in sorted(fold)]
            rest = [domains[i] for i in sorted(set(order) - set(fold))]
            train, valid = _split_off(rest, args.valid_fraction, k, f"pfam fold {k}")
            out[f"pfam-fold{k}"] = (train, valid, test)
    return out


def builder(args, output_bias):
    """``kind -> model`` with this run's settings."""
    from keras_symconv.models import build_contact_cnn, build_contact_scnn

    return model_builder(build_contact_scnn, build_contact_cnn, args.bn_momentum, output_bias)


def train_all(args, sets):
    from keras_symconv.data.contact import contact_training_dataset

    logfile = train_log(args)
    stop = deadline(args)
    for name, (train, valid, test) in sets.items():
        steps = -(-len(train) // args.batch_size)
        for seed in args.seeds:
            bias = 0.0
            if args.output_prior:
                first = contact_training_dataset(
                    train, args.batch_size, args.crop, seed=seed * 100_003
                )
                bias = prior_logit(first, args.positive_weight)
            runs = [
                Run(
                    os.path.join(args.work, name, f"seed{seed}", kind),
                    kind,
                    seed,
                    builder(args, bias),
                    args.lr_scnn if kind == "scnn" else args.lr_cnn,
                    args.positive_weight,
                )
                for kind in args.models
            ]
            pin(runs, "select", args.select, "accuracy", "--select")
            pin(runs, "output_bias", bias, 0.0, "output bias")

            def batches(epoch, seed=seed, train=train):
                return contact_training_dataset(
                    train, args.batch_size, args.crop, seed=seed * 100_003 + epoch
                )

            if not train_side_by_side(
                runs,
                args.epochs,
                batches,
                steps,
                (valid, task(), functools.partial(score, select=args.select)),
                args.validate_every,
                stop,
                logfile,
                label=name,
            ):
                return False
            for run in runs:
                if run.needs_result():
                    finish(run, args, name, (train, valid, test), logfile)
    return True


def finish(run, args, name, sets, logfile):
    """Score the chosen model (best validation epoch and threshold) once."""
    model, result = run.best_model()
    best = run.state["best"]
    result.update(
        {
            "experiment": name,
            "sizes": {
                part: len(items)
                for part, items in zip(("train", "valid", "test"), sets, strict=True)
            },
            "settings": {
                k: getattr(args, k)
                for k in (
                    "crop",
                    "batch_size",
                    "lr_cnn",
                    "lr_scnn",
                    "positive_weight",
                    "bn_momentum",
                    "valid_fraction",
                    "folds",
                    "validate_every",
                    "limit",
                )
            },
            "select": run.state["select"],
            "output_bias": run.state["output_bias"],
        }
    )
    for part, items in zip(("valid", "test"), sets[1:], strict=True):
        maps, seconds = predict_maps(model, items, task())
        result[part] = score(items, maps, best["threshold"], run.state["select"])
        if part == "test":
            result["inference_seconds_per_chain"] = float(np.mean(seconds))
            result["test_names"] = [e.name for e in items]
            k = int(np.argmin([abs(len(e) - 100) for e in items]))
            np.save(os.path.join(run.folder, "figure_map.npy"), maps[k].astype(np.float32))
            result["figure_chain"] = items[k].name
    write_json(run.result_path, result)
    t = result["test"]
    log(
        logfile,
        f"{name} seed {run.seed} {run.kind}: test PPV/Sen/Acc {t['ppv']:.3f}/"
        f"{t['sensitivity']:.3f}/{t['accuracy']:.3f}, long L/5 {t['long_L/5']:.3f}",
    )


def _fold(result):
    return int(result["experiment"].rsplit("fold", 1)[1])


def _pooled_pfam(results):
    """Pfam folds pooled: per-domain figures of every fold's test part, averaged."""
    pooled = {}
    for r in results:
        pooled.setdefault((r["kind"], r["seed"]), []).append(r)
    out = []
    for (kind, seed), rs in pooled.items():
        n = [len(r["test"]["per_sequence"]) for r in rs]
        merged = {
            "kind": kind,
            "seed": seed,
            "experiment": "pfam (all folds)",
            "select": rs[0].get("select", "accuracy"),
        }
        for key in ("ppv", "sensitivity", "accuracy", *PRECISION_KEYS):
            merged[key] = float(np.average([r["test"][key] for r in rs], weights=n))
        merged.update(
            trainable_params=rs[0]["trainable_params"],
            seconds_per_epoch=float(np.median([r["seconds_per_epoch"] for r in rs])),
            folds=len(rs),
            best_epoch="+".join(str(r["best_epoch"]) for r in sorted(rs, key=_fold)),
            epochs=rs[0]["epochs"],
        )
        out.append(merged)
    return out


def report(args):
    os.makedirs(args.out, exist_ok=True)
    found = list(collect_results(args.work, args.out).values())
    settings = sorted({json.dumps(r["settings"], sort_keys=True) for r in found})
    lines = [
        "# Contact maps (Table III)",
        "",
        f"Machine: {machine()}; date {time.strftime('%Y-%m-%d')}.",
        *command_lines("reproduce_contact.py", args.argv, args.out),
        "Training settings (paper: crop 100, batch 10, Adam 1e-3 CNN / 2e-3 SCNN, weight 5): "
        + ("; ".join(settings) or "no finished run yet")
        + ".",
        "",
        "| experiment | model | seeds | epoch chosen by | chosen epoch / trained "
        "| trainable params (paper) | test PPV / Sen / Acc | "
        + " | ".join(PRECISION_KEYS)
        + " | s/epoch |",
        "|---|---|---|---|---|---|---|" + "---|" * len(PRECISION_KEYS) + "---|",
    ]
    rows = [r for r in found if not r["experiment"].startswith("pfam")]
    flat = [{**r, **r["test"], "select": r.get("select", "accuracy")} for r in rows]
    flat += _pooled_pfam([r for r in found if r["experiment"].startswith("pfam")])
    groups = {}
    for r in flat:
        groups.setdefault((r["experiment"], r["kind"], r["select"]), []).append(r)
    for (experiment, kind, select), rs in sorted(groups.items()):
        paper = PAPER_PARAMS.get(kind)
        lines.append(
            f"| {experiment} | {TITLES[kind]} | {','.join(str(r['seed']) for r in rs)} | "
            f"valid {select} | "
            f"{','.join(str(r.get('best_epoch', '-')) for r in rs)} / {rs[0].get('epochs', '-')} | "
            f"{rs[0]['trainable_params']:,} ({f'{paper:,}' if paper else '-'}) | "
            + " / ".join(mean_sd([r[k] for r in rs]) for k in ("ppv", "sensitivity", "accuracy"))
            + " | "
            + " | ".join(mean_sd([r[k] for r in rs]) for k in PRECISION_KEYS)
            + f" | {mean_sd([r['seconds_per_epoch'] for r in rs], 0)} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "tables.md"), "w") as handle:
        handle.write(text)
    print(text)
    figure(args, found)


def figure(args, found):
    """Fig. 2 analogue for one TS50 chain: native contacts beside CNN and SCNN.

    Drawn from the lowest seed of ts50-25-100 that has a finished CNN and
    SCNN run among all the runs kept, not among this command's ``--seeds``:
    the figure must not change with whichever run finished last. Where that
    seed's predicted maps are not in ``--work`` (another machine trained
    it), the figure is left as it is.
    """
    from keras_symconv.data.contact import contact_example
    from keras_symconv.data.protein import read_protein_json
    from keras_symconv.plotting import heatmap

    ts50 = [r for r in found if r["experiment"] == "ts50-25-100"]
    seeds = {kind: {r["seed"]: r for r in ts50 if r["kind"] == kind} for kind in ("cnn", "scnn")}
    both = set(seeds["cnn"]) & set(seeds["scnn"])
    if not both:
        return
    seed = min(both)
    maps, titles = [], []
    for kind in ("cnn", "scnn"):
        path = os.path.join(args.work, "ts50-25-100", f"seed{seed}", kind, "figure_map.npy")
        if not os.path.exists(path):
            print(f"heatmaps.png left as it is: {path} (the predicted map) is not here")
            return
        maps.append(np.load(path))
        titles.append(TITLES[kind])
    name = seeds["scnn"][seed]["figure_chain"]
    chain = next(
        c for c in read_protein_json(os.path.join(args.protein, "ts50.json")) if c.name == name
    )
    maps.insert(0, task().native(contact_example(chain)))
    titles.insert(0, "native (C-alpha < 8 A)")
    heatmap(
        os.path.join(args.out, "heatmaps.png"),
        maps,
        titles,
        suptitle=f"{name} ({len(chain)} residues, TS50)",
    )


def main(argv=None):
    args = parse_args(argv)
    return run_script(
        "reproduce_contact.py",
        args,
        lambda: train_all(args, experiments(args)),
        lambda: report(args),
    )


if __name__ == "__main__":
    sys.exit(main())
