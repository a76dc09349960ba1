"""Triangular compute of SymmetryPreserving2D vs keras.layers.Conv2D.

For each shape, four layers on the same symmetric input, timed side by side
(interleaved, median of --reps after a warm-up; more repetitions for
steps so fast that 5 would leave the ratios apart by chance), forward and forward+backward
(gradients w.r.t. the weights and the input): Conv2D, and
SymmetryPreserving2D with compute="full", "triangular" and "auto". Prints a
Markdown table of time ratios against Conv2D, and auto against full.

    cd benchmarks && python triangular_speed.py [--reps 5] [--grid default]
"""

import argparse
import datetime
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import machine, make_steps, time_many  # noqa: E402

import keras_symconv as ks  # noqa: E402

# (batch, L, input channels m, filters F, kernel size C)
GRIDS = {
    "targets": [(2, 512, 64, 64, 5), (1, 512, 40, 20, 13)],
    "default": [
        *[(1, length, 40, 20, c) for length in (128, 256, 512) for c in (3, 5, 9, 13)],
        *[(2, length, 64, 64, c) for length in (128, 256, 512) for c in (3, 5)],
    ],
    "quick": [(1, 128, 8, 8, 3), (1, 128, 8, 8, 5)],
}


def reps_for(step, x, args):
    """``--reps``, or more for a fast step: about ``--seconds`` per layer, at most 51.

    Where a step takes a few milliseconds, 5 repetitions leave the ratios
    a few percent apart by chance.
    """
    start = time.perf_counter()
    step(x).numpy()
    seconds = time.perf_counter() - start
    return max(args.reps, min(51, int(args.seconds / max(seconds, 1e-6))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="time per layer and shape that sets the repetitions of fast steps",
    )
    args = parser.parse_args()
    print(
        f"# triangular_speed: {datetime.date.today()}, {machine()}, reps {args.reps} "
        f"(more for fast steps: about {args.seconds} s per layer, at most 51)"
    )
    print()
    print(
        "| batch | L | m -> F | C | Conv2D fwd ms | full | triangular | auto "
        "| Conv2D fwd+bwd ms | full | triangular | auto | auto / full (fwd, fwd+bwd) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    worst_auto = 0.0
    for batch, length, m, filters, c in GRIDS[args.grid]:
        a = rng.normal(size=(batch, length, length, m)).astype(np.float32)
        x = tf.constant(a + np.swapaxes(a, 1, 2))
        conv = keras.layers.Conv2D(filters, c, padding="same")
        layers = [conv] + [
            ks.SymmetryPreserving2D(filters, c, padding="same", compute=mode)
            for mode in ("full", "triangular", "auto")
        ]
        for layer in layers:
            layer.build(x.shape)
        for layer in layers[2:]:
            layer.set_weights(layers[1].get_weights())
        steps = [make_steps(layer, x, jit=False) for layer in layers]
        fwd = time_many([s[0] for s in steps], x, reps_for(steps[0][0], x, args))
        fwd_bwd = time_many([s[1] for s in steps], x, reps_for(steps[0][1], x, args))
        auto_fwd, auto_fb = fwd[3] / fwd[1], fwd_bwd[3] / fwd_bwd[1]
        worst_auto = max(worst_auto, auto_fwd, auto_fb)
        ratios = lambda t: " | ".join(f"{v / t[0]:.3f}" for v in t[1:])  # noqa: E731
        print(
            f"| {batch} | {length} | {m} -> {filters} | {c} | {1e3 * fwd[0]:.0f} | {ratios(fwd)} "
            f"| {1e3 * fwd_bwd[0]:.0f} | {ratios(fwd_bwd)} | {auto_fwd:.3f}, {auto_fb:.3f} |",
            flush=True,
        )
    print()
    print(f"worst auto / full: {worst_auto:.3f}")


if __name__ == "__main__":
    main()
