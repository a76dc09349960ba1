"""Fused symmetry generation vs SelfCartesian + SymmetryGenerating2D.

Forward+backward (gradients w.r.t. the weights and the sequence) of
FusedSymmetryGenerating2D against the unfused pair with the same weights:
time side by side (interleaved, median of --reps after a warm-up), and the
step's peak resident memory, each variant in a fresh process (see
layer_speed.step_peak_mib).

    cd benchmarks && python fused_speed.py [--reps 5] [--sizes 1 5 13]
"""

import argparse
import datetime
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from layer_speed import run_memory_child, step_peak_mib, time_pair  # noqa: E402

import keras_symconv as ks  # noqa: E402


def step(layers, variables):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = x
            for layer in layers:
                h = layer(h)
            loss = tf.reduce_sum(tf.square(h))
        grads = tape.gradient(loss, [x] + variables)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return tf.function(run)


def make_pair(c, args):
    fused = ks.FusedSymmetryGenerating2D(args.filters, c)
    fused.build((None, args.length, args.n))
    unfused = ks.SymmetryGenerating2D(args.filters, c)
    unfused.build((None, args.length, args.length, 2 * args.n))
    unfused.set_weights(fused.get_weights())
    return {
        "unfused": step([ks.SelfCartesian(), unfused], unfused.trainable_variables),
        "fused": step([fused], fused.trainable_variables),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--filters", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 13])
    parser.add_argument("--memory-child", nargs=2, metavar=("C", "VARIANT"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.length, args.n)), tf.float32)
    if args.memory_child:
        c, variant = int(args.memory_child[0]), args.memory_child[1]
        print(step_peak_mib(make_pair(c, args)[variant], x))
        return
    sizes = [
        f"--batch={args.batch}",
        f"--length={args.length}",
        f"--n={args.n}",
        f"--filters={args.filters}",
    ]
    print(
        f"# fused_speed: {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"TF {tf.__version__}, batch {args.batch}, L {args.length}, n {args.n}, "
        f"F {args.filters}, reps {args.reps}"
    )
    print()
    print(
        "| C | unfused fwd+bwd ms | fused fwd+bwd ms | speed-up | unfused peak MiB "
        "| fused peak MiB | memory unfused / fused |"
    )
    print("|---|---|---|---|---|---|---|")
    for c in args.sizes:
        steps = make_pair(c, args)
        t_unfused, t_fused = time_pair(steps["unfused"], steps["fused"], x, args.reps, warmup=1)
        m_unfused, m_fused = (
            run_memory_child(__file__, [*sizes, "--memory-child", str(c), variant])
            for variant in ("unfused", "fused")
        )
        print(
            f"| {c} | {1e3 * t_unfused:.0f} | {1e3 * t_fused:.0f} | {t_unfused / t_fused:.1f}x "
            f"| {m_unfused:.0f} | {m_fused:.0f} | {m_unfused / m_fused:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
