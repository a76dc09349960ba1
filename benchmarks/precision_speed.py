"""Training-step cost of the RNA CNN and SCNN by precision policy and XLA.

For each (policy, XLA, crop), in a fresh process: both models built under
the policy (``keras.config.set_dtype_policy``), compiled with
``jit_compile`` on or off, then ``train_on_batch`` on random one-hot
batches of ``--batch`` x crop with random nested pair maps. The first call
(graph building and compilation) is timed on its own; then ``--reps`` warm
steps of the two models interleaved, median of each.

    cd benchmarks && python precision_speed.py [--crops 128 256] [--reps 4]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POLICIES = ("float32", "mixed_bfloat16")


def child(policy, jit, crop, batch, reps):
    import keras
    import numpy as np

    keras.config.set_dtype_policy(policy)
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    from keras_symconv.losses import PairBinaryCrossentropy

    rng = np.random.default_rng(0)
    x = np.eye(5, dtype=np.float32)[rng.integers(0, 4, size=(batch, crop))]
    y = np.zeros((batch, crop, crop, 1), np.float32)
    for b in range(batch):
        for i in range(0, crop // 2, 3):
            y[b, i, crop - 1 - i] = y[b, crop - 1 - i, i] = 1.0
    models, first = {}, {}
    for name, build in (("cnn", build_rna_cnn), ("scnn", build_rna_scnn)):
        model = build(batch_norm_momentum=0.9)
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=PairBinaryCrossentropy(positive_weight=5.0),
            jit_compile=jit,
        )
        start = time.perf_counter()
        model.train_on_batch(x, y)
        first[name] = time.perf_counter() - start
        models[name] = model
    for model in models.values():  # one more warm-up each
        model.train_on_batch(x, y)
    times = {name: [] for name in models}
    for _ in range(reps):
        for name, model in models.items():
            start = time.perf_counter()
            loss = model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
            if not np.isfinite(np.asarray(loss)).all():
                raise SystemExit(f"{name}: loss {loss} under {policy}")
    print(json.dumps({"first": first, "steps": times}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crops", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    p.add_argument("--xla", nargs="+", choices=("off", "on"), default=["off", "on"])
    p.add_argument("--child", nargs=3, metavar=("POLICY", "XLA", "CROP"))
    args = p.parse_args()
    if args.child:
        policy, jit, crop = args.child
        return child(policy, jit == "on", int(crop), args.batch, args.reps)
    from timing import machine

    print(f"# {machine()}; {datetime.date.today()}; batch {args.batch}, median of {args.reps}")
    print(
        "| policy | XLA | crop | CNN s/step | SCNN s/step | SCNN / CNN | first step CNN / SCNN s |"
    )
    print("|---|---|---|---|---|---|---|")
    import statistics

    for crop in args.crops:
        for policy in args.policies:
            for jit in args.xla:
                command = [sys.executable, __file__, "--batch", str(args.batch), "--reps",
                           str(args.reps), "--child", policy, jit, str(crop)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    reason = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
                    print(f"| {policy} | {jit} | {crop} | failed: {reason} | | | |", flush=True)
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                cnn, scnn = (statistics.median(r["steps"][k]) for k in ("cnn", "scnn"))
                print(
                    f"| {policy} | {jit} | {crop} | {cnn:.2f} | {scnn:.2f} | {scnn / cnn:.2f} | "
                    f"{r['first']['cnn']:.1f} / {r['first']['scnn']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
