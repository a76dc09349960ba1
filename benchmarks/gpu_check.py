"""GPU check: the RNA SCNN and CNN under ``model.fit`` on JAX or PyTorch, one GPU.

For each model, in a process of its own (so that each has its own peak
memory): ``fit`` for ``--steps`` steps of ``--batch-size`` x ``--crop``-nt
crops, Adam 2e-3 and the paper's loss (``PairBinaryCrossentropy``, positives
weighted 5), the output starting at the prior log-odds. Then it checks that

- the loss fell (mean of the last tenth of the steps below the first tenth),
- the SCNN's predicted maps are symmetric (``asymmetry`` below 1e-5),

and prints the warm time per step (median after the first ``--warmup``
steps), the first step's time (tracing and compiling) and the peak memory:
the GPU allocator's peak on a GPU, the resident peak on a CPU. The last
table gives SCNN / CNN ratios. Results also go to ``OUT/gpu_check.json``.

Data: the 16S split's training file (``--data PATH/train.txt``, read with
NumPy) or, by default, synthetic RNAs; batches are drawn with NumPy, so
neither TensorFlow nor ``tf.data`` is needed.

``--train MINUTES``: instead of the check, train each model for half of
``MINUTES`` after its first step (the SCNN first), starting from the long runs' checkpoints
(``--init benchmarks/results/rna_long``: their weights and output prior),
and write ``OUT/<model>.keras`` and ``OUT/<model>.json`` (steps, crop,
losses). The optimizer starts afresh: its state in the checkpoints belongs
to the TensorFlow run.

    python benchmarks/gpu_check.py --backend jax --out /tmp/gpu
    python benchmarks/gpu_check.py --backend torch --tiny --steps 12 --crop 24 --out /tmp/g
    python benchmarks/gpu_check.py --backend jax --data DATA/train.txt --train 8 \\
        --init benchmarks/results/rna_long --out /tmp/gpu_train

``benchmarks/gpu_check.sh`` prepares the wheels here and runs this on the
device machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MODELS = ("cnn", "scnn")
TINY = dict(
    lstm_units=4,
    dense_units=3,
    first_filters=6,
    block1=((5, 4),),
    block2=((3, 4),),
    block3=((3, 4),),
    side_filters=2,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("jax", "torch", "tensorflow"), required=True)
    p.add_argument("--out", required=True, help="folder for gpu_check.json (and --train's weights)")
    p.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)  # one model per process
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the warm median")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--crop", type=int, default=500)
    p.add_argument("--data", help="the 16S split's train.txt (default: synthetic RNAs)")
    p.add_argument("--train", type=float, metavar="MINUTES", help="train instead of checking")
    p.add_argument("--init", help="a train_rna_long.py folder to start --train from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke test)")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error(f"--steps ({args.steps}) must be above --warmup ({args.warmup})")
    if args.crop < 8 or args.batch_size < 1:
        p.error("--crop must be >= 8 and --batch-size >= 1")
    return args


def structures(args):
    from keras_symconv.data import read_strand16s, synthetic_rna_dataset

    if args.data:
        return read_strand16s(args.data)
    return synthetic_rna_dataset(400, max(10, args.crop // 2), args.crop * 2, seed=args.seed)


def batches(items, batch_size, crop, rng):
    """Endless ``(x (b, crop, 5), y (b, crop, crop, 1))`` batches of random windows.

    A window of a longer sequence starts uniformly; a shorter sequence is
    padded, with label -1 (ignored by the loss) on its padding.
    """
    import numpy as np

    while True:
        x = np.zeros((batch_size, crop, 5), "float32")
        y = np.full((batch_size, crop, crop, 1), -1.0, "float32")
        for k, index in enumerate(rng.integers(0, len(items), batch_size)):
            item = items[index]
            start = int(rng.integers(0, max(1, len(item) - crop + 1)))
            stop = min(len(item), start + crop)
            n = stop - start
            x[k, :n] = item.one_hot()[start:stop]
            y[k, :n, :n, 0] = item.contact_map()[start:stop, start:stop]
        yield x, y


def peak_memory():
    """``(bytes, what)``: the GPU allocator's peak, else the process's resident peak."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform == "gpu" else None
        if stats and "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"]), "GPU peak"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.max_memory_allocated()), "GPU peak"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "resident peak"


def device_name():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].device_kind} (jax {jax.__version__})"
    if backend == "torch":
        import torch

        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        return f"{name} (torch {torch.__version__})"
    return "CPU (tensorflow)"


def run_one(args):
    """Fit one model; returns its figures (a dict)."""
    import keras
    import numpy as np
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    import keras_symconv as ks
    from keras_symconv.losses import PairBinaryCrossentropy
    from keras_symconv.training import prior_logit

    keras.utils.set_random_seed(args.seed)
    items = structures(args)
    config = {}
    if args.init:
        with open(os.path.join(args.init, "config.json")) as handle:
            config = json.load(handle)
    if "output_bias" in config:
        bias = config["output_bias"]
    else:  # the prior log-odds of 20 batches' crops, as the long runs start
        sample = batches(items, args.batch_size, args.crop, np.random.default_rng(args.seed + 1))
        bias = prior_logit([next(sample) for _ in range(20)], 5.0)
    build = build_rna_scnn if args.model == "scnn" else build_rna_cnn
    kwargs = dict(TINY) if args.tiny else {}
    if "bn_momentum" in config:
        kwargs["batch_norm_momentum"] = config["bn_momentum"]
    start_from = os.path.join(args.init, args.model, "last.keras") if args.init else None
    # weights= loads by order, so a checkpoint saved in the upper layout (the
    # TensorFlow default) loads into this backend's layout.
    model = build(output_bias=bias, weights=start_from, **kwargs)
    model.compile(keras.optimizers.Adam(2e-3), PairBinaryCrossentropy(positive_weight=5.0))

    rng = np.random.default_rng(args.seed)
    data = batches(items, args.batch_size, args.crop, rng)
    ends = []

    class Clock(keras.callbacks.Callback):
        # One step per epoch: the epoch's end waits for its loss, so the
        # time between two ends is a whole step, data included.
        def on_train_begin(self, logs=None):
            ends.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())
            # --train's minutes count from the first step's end (compiling left out).
            if budget is not None and ends[-1] - ends[1] > budget:
                self.model.stop_training = True

    budget = None
    steps = args.steps
    if args.train:
        budget = 60 * args.train / 2
        steps = 10**7
    # One epoch per step gives the loss of every step in the history.
    history = model.fit(data, steps_per_epoch=1, epochs=steps, verbose=0, callbacks=[Clock()])
    losses = [float(v) for v in history.history["loss"]]
    seconds = [float(v) for v in np.diff(ends)]
    x, _ = next(data)
    maps = np.asarray(model.predict_on_batch(x[:2]))
    tenth = max(1, len(losses) // 10)
    result = {
        "model": args.model,
        "steps": len(losses),
        "first_step_s": seconds[0],
        "warm_step_s": statistics.median(seconds[args.warmup :] or seconds),
        "loss_first": float(np.mean(losses[:tenth])),
        "loss_last": float(np.mean(losses[-tenth:])),
        "asymmetry": float(ks.asymmetry(maps)),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "device": device_name(),
    }
    result["peak_bytes"], result["peak_kind"] = peak_memory()
    if args.train:
        # A .keras file: the builders' weights= loads it by order, into
        # either layout (a .weights.h5 file loads by layer path only).
        model.save(os.path.join(args.out, f"{args.model}.keras"))
        result.update(crop=args.crop, batch_size=args.batch_size, started_from=start_from)
        result["losses"] = losses
        with open(os.path.join(args.out, f"{args.model}.json"), "w") as handle:
            json.dump(result, handle, indent=1)
    return result


def checks(results, training=False):
    """Lines of failed checks (empty when all hold); --train checks symmetry only."""
    failed = []
    for r in results:
        if not training and not r["loss_last"] < r["loss_first"]:
            failed.append(f"{r['model']}: the loss did not fall ({r['loss_first']:.4f} -> "
                          f"{r['loss_last']:.4f})")  # fmt: skip
        if r["model"] == "scnn" and not r["asymmetry"] < 1e-5:
            failed.append(f"scnn: maps not symmetric (asymmetry {r['asymmetry']:.2e})")
    return failed


def table(results):
    by = {r["model"]: r for r in results}
    lines = [
        "| model | steps | first step s | warm step s | peak MB | loss first -> last | asymmetry |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model'].upper()} | {r['steps']} | {r['first_step_s']:.2f} "
            f"| {r['warm_step_s']:.4f} | {r['peak_bytes'] / 2**20:.0f} "
            f"| {r['loss_first']:.4f} -> {r['loss_last']:.4f} | {r['asymmetry']:.1e} |"
        )
    if set(by) == set(MODELS):
        s, c = by["scnn"], by["cnn"]
        lines.append(
            f"| SCNN / CNN | | {s['first_step_s'] / c['first_step_s']:.2f} "
            f"| {s['warm_step_s'] / c['warm_step_s']:.3f} "
            f"| {s['peak_bytes'] / c['peak_bytes']:.3f} | | |"
        )
    return lines


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(args.out, exist_ok=True)
    if args.model:  # a child: one model, its figures as the last line
        print(json.dumps(run_one(args)))
        return 0
    results = []
    for kind in ("scnn", "cnn"):
        child = [sys.executable, os.path.abspath(__file__), *(argv or sys.argv[1:])]
        done = subprocess.run([*child, "--model", kind], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            print(f"gpu_check: {kind} failed (exit {done.returncode})", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda r: MODELS.index(r["model"]))
    device = results[0]["device"]
    what = "train" if args.train else "check"
    print(
        f"# gpu_check ({what}): {time.strftime('%Y-%m-%d')}, {device}, {platform.node()}, "
        f"batch {args.batch_size} x crop {args.crop}, data "
        f"{'16S train' if args.data else 'synthetic'}{', tiny models' if args.tiny else ''}; "
        f"memory: {results[0]['peak_kind']}"
    )
    print()
    print("\n".join(table(results)))
    failed = checks(results, training=bool(args.train))
    for line in failed:
        print(f"FAILED: {line}")
    with open(os.path.join(args.out, "gpu_check.json"), "w") as handle:
        json.dump({"device": device, "args": vars(args), "results": results,
                   "failed": failed}, handle, indent=1)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
