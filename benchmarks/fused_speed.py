"""Fused symmetry generation vs SelfCartesian + SymmetryGenerating2D.

Forward+backward (gradients w.r.t. the weights and the sequence) of
FusedSymmetryGenerating2D against the unfused pair with the same weights:
time side by side (interleaved, median of --reps after a warm-up), and the
step's peak resident memory, each variant in a fresh process, the graph
traced first (see timing.step_peak_mib). The loss is the sum of squares of the output
map. A third variant, the fused layer with ``layout="upper"``, returns only
the upper triangle and computes the same loss from it (entries off the
diagonal counted twice), so its gradients are the same.

    cd benchmarks && python fused_speed.py [--reps 5] [--sizes 1 5 13]
"""

import argparse
import datetime
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import (  # noqa: E402
    machine,
    peak_ratio_text,
    peak_text,
    run_memory_child,
    step_peak_mib,
    time_many,
)

import keras_symconv as ks  # noqa: E402


def full_map_sum_of_squares(h):
    """``sum(Z^2)`` over the full map ``Z`` of ``h`` in the upper layout."""
    side = ks.ops.upper.side_of(int(h.shape[1]))
    diagonal = tf.scatter_nd(
        ks.ops.upper.diagonal_index(side)[:, None], tf.ones([side]), [int(h.shape[1])]
    )
    weight = 2.0 - diagonal  # entries off the diagonal stand for two
    return tf.reduce_sum(tf.square(h) * weight[:, None])


def step(layers, variables, loss_fn=lambda h: tf.reduce_sum(tf.square(h))):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = x
            for layer in layers:
                h = layer(h)
            loss = loss_fn(h)
        grads = tape.gradient(loss, [x] + variables)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return tf.function(run)


def make_pair(c, args):
    fused = ks.FusedSymmetryGenerating2D(args.filters, c)
    fused.build((None, args.length, args.n))
    unfused = ks.SymmetryGenerating2D(args.filters, c)
    unfused.build((None, args.length, args.length, 2 * args.n))
    unfused.set_weights(fused.get_weights())
    upper = ks.FusedSymmetryGenerating2D(args.filters, c, layout="upper")
    upper.build((None, args.length, args.n))
    upper.set_weights(fused.get_weights())
    return {
        "unfused": step([ks.SelfCartesian(), unfused], unfused.trainable_variables),
        "fused": step([fused], fused.trainable_variables),
        "fused-upper": step([upper], upper.trainable_variables, full_map_sum_of_squares),
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
        variant_step = make_pair(c, args)[variant]
        print(*step_peak_mib(variant_step, x, lambda: variant_step.get_concrete_function(x)))
        return
    sizes = [
        f"--batch={args.batch}",
        f"--length={args.length}",
        f"--n={args.n}",
        f"--filters={args.filters}",
    ]
    print(
        f"# fused_speed: {datetime.date.today()}, {machine()}, batch {args.batch}, "
        f"L {args.length}, n {args.n}, F {args.filters}, reps {args.reps}"
    )
    print()
    print(
        "| C | unfused fwd+bwd ms | fused ms | speed-up | fused, upper layout ms | speed-up "
        "| unfused peak MiB (resident / allocator) | fused peak MiB "
        "| memory unfused / fused | fused, upper layout peak MiB | memory unfused / fused upper |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    variants = ("unfused", "fused", "fused-upper")
    for c in args.sizes:
        steps = make_pair(c, args)
        t_unfused, t_fused, t_upper = time_many(
            [steps[v] for v in variants], x, args.reps, warmup=1
        )
        m_unfused, m_fused, m_upper = (
            run_memory_child(__file__, [*sizes, "--memory-child", str(c), variant])
            for variant in variants
        )
        print(
            f"| {c} | {1e3 * t_unfused:.0f} | {1e3 * t_fused:.0f} | {t_unfused / t_fused:.1f}x "
            f"| {1e3 * t_upper:.0f} | {t_unfused / t_upper:.1f}x "
            f"| {peak_text(m_unfused)} | {peak_text(m_fused)} "
            f"| {peak_ratio_text(m_unfused, m_fused, 2, 'x')} | {peak_text(m_upper)} "
            f"| {peak_ratio_text(m_unfused, m_upper, 2, 'x')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
