"""Scaling: the SCNN against the CNN at every size, training and inference.

For the RNA networks (and the contact networks with ``--task contact``),
side by side in one run of this script:

* training steps at each crop x batch x precision, with the side known
  when the graph is built (``train_on_batch`` on arrays) and unknown (Keras'
  ``train_step`` traced with every length axis ``None``, what ``fit`` runs
  on variable-length ``tf.data`` batches). Each (precision, crop, batch) in
  a fresh process: a tiny warm-up op first (the runtime's own start-up is
  nobody's graph), then each model's first step timed on its own (graph
  building, tracing and the first run), then ``--reps`` warm steps of the
  four (model, side) steps interleaved, median of each, and the
  allocator's peak of a warm step (TensorFlow's CPU allocator statistics,
  tensors in use during the step above those before it);
* inference on one sequence at each length, each (model, length) in a
  fresh process, through the tool's predictor
  (:func:`keras_symconv.inference.make_predictor`, which tiles by itself
  when the whole map would not fit): the first call, the median of warm
  calls (``--infer-reps``, fewer for long sequences); then, in a second
  fresh process with glibc returning freed blocks to the system, one call's
  resident-set peak above the process before it (``VmHWM``) and the
  allocator's peak (times come from the first process: that malloc
  setting slows the runs).

Prints Markdown tables, writes ``scaling.json`` and ``scaling.png``
(log-log time and memory against L, both models) to ``--out``, and fits
the cost's growth exponent ``time ~ L^k`` over the lengths from 500 up.

    cd benchmarks && python scaling.py                         # the RNA grid
    python scaling.py --task contact                           # the contact networks
    python scaling.py --parts infer --lengths 500 1500 --reps 2  # a part
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MODELS = ("cnn", "scnn")
SIDES = ("known", "unknown")
DEFAULTS = {
    "rna": {
        "crops": [32, 64, 128, 256, 500],
        "batches": [1, 4, 10],
        "lengths": [100, 500, 1500, 4000, 10000],
        "cnn_max_length": 4000,
    },
    "contact": {
        "crops": [64, 128, 256],
        "batches": [1, 2],
        "lengths": [64, 128, 256, 512, 1000],
        "cnn_max_length": 1000,
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("rna", "contact"), default="rna")
    p.add_argument("--parts", nargs="+", choices=("train", "infer"), default=["train", "infer"])
    p.add_argument("--crops", type=int, nargs="+", help="training crops (default per task)")
    p.add_argument("--batches", type=int, nargs="+", help="training batch sizes")
    p.add_argument(
        "--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
    )  # fmt: skip
    p.add_argument("--lengths", type=int, nargs="+", help="inference lengths")
    p.add_argument(
        "--cnn-max-length",
        type=int,
        help="longest CNN inference (its untiled map outgrows the machine first; default "
        "4,000 nt / 1,000 residues)",
    )
    p.add_argument("--reps", type=int, default=3, help="warm training steps of each")
    p.add_argument("--infer-reps", type=int, default=3, help="warm inference calls up to 1,500")
    p.add_argument("--tiny", action="store_true", help="tiny models (a smoke test)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "scaling"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# -- in a fresh process ------------------------------------------------------


def _build(task, kind, tiny):
    from keras_symconv.tasks import TASKS

    kwargs = {}
    if tiny:
        kwargs = dict(lstm_units=4, dense_units=3, first_filters=4)
        if task == "rna":
            kwargs.update(block1=((5, 4), (3, 4)), block2=((3, 4),), block3=((3, 4),),
                          side_filters=4)  # fmt: skip
        else:
            kwargs.update(blocks=(((5, 4), (3, 4)),), final_blocks=(((3, 4),),))
    return TASKS[task].build(kind, **kwargs)


def _data(task, batch, length, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    if task == "rna":
        x = np.eye(5, dtype=np.float32)[rng.integers(0, 4, size=(batch, length))]
    else:
        pair = rng.normal(size=(batch, length, length, 3)).astype(np.float32)
        x = (rng.normal(size=(batch, length, 25)).astype(np.float32), pair + pair.swapaxes(1, 2))
    y = (rng.random((batch, length, length, 1)) < 0.02).astype(np.float32)
    return x, np.maximum(y, y.swapaxes(1, 2))


def _warm_up_runtime():
    import tensorflow as tf

    tf.nn.conv2d(tf.ones((1, 8, 8, 2)), tf.ones((3, 3, 2, 2)), 1, "SAME").numpy()


def train_child(task, precision, crop, batch, reps, tiny):
    """Print JSON: first-step and warm seconds, allocator peak MiB, per model and side."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.config.set_dtype_policy(precision)
    from timing import _allocator_stats

    from keras_symconv.losses import PairBinaryCrossentropy

    _warm_up_runtime()
    x, y = _data(task, batch, crop)
    steps, first = {}, {}
    for kind in MODELS:
        model = _build(task, kind, tiny)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=PairBinaryCrossentropy())
        model.optimizer.build(model.trainable_variables)
        for side in SIDES:
            signature = None
            if side == "unknown":
                signature = [
                    tf.nest.map_structure(
                        lambda a: tf.TensorSpec(
                            [a.shape[0]] + [None] * (a.ndim - 2) + [a.shape[-1]], tf.float32
                        ),
                        (x, y),
                    )
                ]
            function = tf.function(model.train_step, input_signature=signature)
            start = time.perf_counter()
            loss = function((x, y))
            np.asarray(tf.nest.flatten(loss)[0])
            first[f"{kind}/{side}"] = time.perf_counter() - start
            steps[f"{kind}/{side}"] = function
    warm = {key: [] for key in steps}
    peaks = {key: [] for key in steps}
    for _ in range(reps):
        for key, function in steps.items():
            stats = _allocator_stats(reset=True)
            start = time.perf_counter()
            np.asarray(tf.nest.flatten(function((x, y)))[0])
            warm[key].append(time.perf_counter() - start)
            if stats is not None:
                peaks[key].append((_allocator_stats()["peak"] - stats["current"]) / 2**20)
    print(
        json.dumps(
            {
                "first": first,
                "warm": {k: float(np.median(v)) for k, v in warm.items()},
                "allocator_mib": {k: float(np.median(v)) if v else None for k, v in peaks.items()},
            }
        )
    )


def infer_child(task, kind, length, reps, tiny):
    """Print JSON: first and warm seconds, resident and allocator peaks (MiB), tiled or not."""
    import numpy as np
    from timing import _allocator_stats, _status_kib

    from keras_symconv.inference import make_predictor
    from keras_symconv.tasks import TASKS

    _warm_up_runtime()
    model = _build(task, kind, tiny)
    x, _ = _data(task, 1, length)
    if task == "rna":
        from keras_symconv.data import BASES, RNAStructure

        sequence = "".join(BASES[k] for k in x[0].argmax(-1))
        item = RNAStructure.from_pairs(f"{kind}-{length}", sequence, [])
    else:
        from keras_symconv.data.contact import ContactExample

        zeros = np.zeros((length, length), np.float32)
        item = ContactExample(f"{kind}-{length}", x[0][0], x[1][0], zeros, zeros[0])
    tiled = []
    predict = make_predictor(model, TASKS[task], log=tiled.append)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    stats = _allocator_stats(reset=True)
    start = time.perf_counter()
    prob = predict(item)
    first = time.perf_counter() - start
    resident = (_status_kib("VmHWM") - before) / 1024
    allocator = None if stats is None else (_allocator_stats()["peak"] - stats["current"]) / 2**20
    warm = []
    for _ in range(reps):
        start = time.perf_counter()
        predict(item)
        warm.append(time.perf_counter() - start)
    assert np.isfinite(prob).all()
    print(
        json.dumps(
            {
                "first": first,
                "warm": float(np.median(warm)) if warm else first,
                "resident_mib": resident,
                "allocator_mib": allocator,
                "tiled": bool(tiled),
            }
        )
    )


# -- the driver ----------------------------------------------------------------


def run_child(argv, for_memory=False):
    """The child's JSON, or ``{"failed": why}`` when it dies (its stderr's tail is printed).

    ``for_memory``: malloc returns every block of 64 KiB or more to the system
    when it is freed (``MALLOC_MMAP_THRESHOLD_``), so that the resident peak
    is the run's own. That slows the runs themselves, the SCNN's many
    mid-sized tensors most (RESULTS.md, scaling), so times come from a child
    without it.
    """
    env = dict(os.environ)
    if for_memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=env
    )  # fmt: skip
    if out.returncode != 0:
        why = f"exit {out.returncode}" if out.returncode > 0 else f"signal {-out.returncode}"
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        print(f"{' '.join(argv)} failed ({why}):\n{tail}", file=sys.stderr, flush=True)
        return {"failed": why}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratio(a, b):
    return "-" if a is None or b is None or not b else f"{a / b:.2f}"


def train_table(args, results):
    lines = [
        "| precision | crop | batch | side | CNN warm s | SCNN warm s | **SCNN / CNN** "
        "| CNN first s | SCNN first s | first SCNN / CNN | allocator MiB CNN / SCNN |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for precision in args.precisions:
        for crop in args.crops:
            for batch in args.batches:
                child = ["--child", f"train:{args.task}:{precision}:{crop}:{batch}:{args.reps}"]
                r = run_child(child + (["--tiny"] if args.tiny else []))
                results.append({"part": "train", "precision": precision, "crop": crop,
                                "batch": batch, **r})  # fmt: skip
                if "failed" in r:
                    lines.append(f"| {precision} | {crop} | {batch} | - | failed ({r['failed']}) "
                                 "| | | | | | |")  # fmt: skip
                    print(lines[-1], flush=True)
                    continue
                for side in SIDES:
                    c, s = f"cnn/{side}", f"scnn/{side}"
                    w, f, m = r["warm"], r["first"], r["allocator_mib"]
                    mem = "-" if m[c] is None else f"{m[c]:.0f} / {m[s]:.0f}"
                    lines.append(
                        f"| {precision} | {crop} | {batch} | {side} | {w[c]:.3f} | {w[s]:.3f} "
                        f"| **{_ratio(w[s], w[c])}** | {f[c]:.1f} | {f[s]:.1f} "
                        f"| {_ratio(f[s], f[c])} | {mem} |"
                    )
                print(lines[-2] + "\n" + lines[-1], flush=True)
    return "\n".join(lines)


def infer_table(args, results):
    lines = [
        "| L | CNN first s | CNN warm s | SCNN first s | SCNN warm s | **SCNN / CNN time** "
        "| resident MiB CNN / SCNN | **SCNN / CNN resident** | allocator MiB CNN / SCNN |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for length in args.lengths:
        row = {}
        for kind in MODELS:
            if kind == "cnn" and length > args.cnn_max_length:
                continue
            reps = args.infer_reps if length <= 1500 else 0
            child = ["--child", f"infer:{args.task}:{kind}:{length}:{reps}"]
            child += ["--tiny"] if args.tiny else []
            row[kind] = run_child(child)
            once = ["--child", f"infer:{args.task}:{kind}:{length}:0"] + child[2:]
            memory = run_child(once, for_memory=True)
            if "failed" in memory:
                row[kind] = memory
            elif "failed" not in row[kind]:
                row[kind].update(resident_mib=memory["resident_mib"],
                                 allocator_mib=memory["allocator_mib"])  # fmt: skip
            results.append({"part": "infer", "model": kind, "length": length, **row[kind]})
        c, s = row.get("cnn"), row.get("scnn")

        c, s = (None if r is None or "failed" in r else r for r in (c, s))

        def cell(r, key, fmt):
            if r is None or r[key] is None:
                return "-"
            return format(r[key], fmt) + (" (tiled)" if key == "warm" and r["tiled"] else "")

        alloc = f"{cell(c, 'allocator_mib', '.0f')} / {cell(s, 'allocator_mib', '.0f')}"
        lines.append(
            f"| {length} | {cell(c, 'first', '.2f')} | {cell(c, 'warm', '.2f')} "
            f"| {cell(s, 'first', '.2f')} | {cell(s, 'warm', '.2f')} "
            f"| **{_ratio(s and s['warm'], c and c['warm'])}** "
            f"| {cell(c, 'resident_mib', '.0f')} / {cell(s, 'resident_mib', '.0f')} "
            f"| **{_ratio(s and s['resident_mib'], c and c['resident_mib'])}** | {alloc} |"
        )
        for kind in MODELS:
            if "failed" in row.get(kind, {}):
                lines[-1] += f" {kind.upper()} failed ({row[kind]['failed']})"
        print(lines[-1], flush=True)
    return "\n".join(lines)


def growth_exponent(lengths, values, smallest=500):
    """Least-squares slope of log(value) against log(L) over L >= smallest (None if < 2)."""
    pairs = [(math.log(n), math.log(v)) for n, v in zip(lengths, values, strict=True)
             if n >= smallest and v and v > 0]  # fmt: skip
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx


def plot(args, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    exponents = {}
    for kind, style in (("cnn", "o--"), ("scnn", "s-")):
        rows = [r for r in results
                if r["part"] == "infer" and r["model"] == kind and "failed" not in r]  # fmt: skip
        if not rows:
            continue
        lengths = [r["length"] for r in rows]
        times = [r["warm"] for r in rows]
        memory = [r["resident_mib"] for r in rows]
        exponents[kind] = growth_exponent(lengths, times)
        k = exponents[kind]
        label = kind.upper() + ("" if k is None else f" (time ~ L^{k:.2f})")
        axes[0].loglog(lengths, times, style, label=label)
        axes[1].loglog(lengths, memory, style, label=kind.upper())
        tiled = [r for r in rows if r["tiled"]]
        for ax, key in zip(axes, ("warm", "resident_mib"), strict=True):
            if tiled:  # hollow: predicted in tiles, so its memory is a tile's, not the map's
                ax.plot([r["length"] for r in tiled], [r[key] for r in tiled], style[0],
                        markerfacecolor="white", markersize=9, color=ax.lines[-1].get_color(),
                        label=f"{kind.upper()} in tiles")  # fmt: skip
    axes[0].set_xlabel("sequence length L")
    axes[0].set_ylabel("inference time, s")
    axes[1].set_xlabel("sequence length L")
    axes[1].set_ylabel("resident peak, MiB")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{args.task}: SCNN against CNN, one sequence")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return exponents


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        kind, *rest = args.child.split(":")
        if kind == "train":
            task, precision, crop, batch, reps = rest
            return train_child(task, precision, int(crop), int(batch), int(reps), args.tiny)
        task, model, length, reps = rest
        return infer_child(task, model, int(length), int(reps), args.tiny)
    from timing import machine

    os.makedirs(args.out, exist_ok=True)
    print(f"# {args.task} scaling, {datetime.date.today()}, {machine()}", flush=True)
    results, text = [], []
    if "train" in args.parts:
        text.append(train_table(args, results))
    if "infer" in args.parts:
        text.append(infer_table(args, results))
        exponents = plot(args, results, os.path.join(args.out, f"{args.task}_scaling.png"))
        text.append(
            "growth exponent of inference time over L >= 500: "
            + ", ".join(
                f"{k.upper()} {'-' if v is None else f'{v:.2f}'}" for k, v in exponents.items()
            )  # fmt: skip
        )
        print(text[-1])
    with open(os.path.join(args.out, f"{args.task}_scaling.json"), "w") as handle:
        json.dump({"date": str(datetime.date.today()), "machine": machine(),
                   "args": vars(args), "results": results}, handle, indent=1)  # fmt: skip
    with open(os.path.join(args.out, f"{args.task}_scaling.md"), "w") as handle:
        handle.write("\n\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
