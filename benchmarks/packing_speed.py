"""Convolutions on pixels of several columns (keras_symconv.ops.columns) against the plain ones.

For each (input channels m, filters F, kernel size C): the forward
convolution (``conv2d``, 'VALID') and the kernel gradient
(``Conv2DBackpropFilter``) on one ``L x L`` map, plain and on pixels of
``P = 2`` and ``4`` columns (``column_conv2d``, ``column_filter_grad``), timed
side by side (interleaved, median of --reps after a warm-up). Prints the time
ratios columns / plain beside the ``P`` that ``choose_columns`` picks for the
shape, so that its count can be checked against the clock: every ratio of
the picked ``P`` should be below 1, and no ratio well below 1 should be
left unpicked.

    cd benchmarks && python packing_speed.py [--reps 5] [--length 256]
"""

import argparse
import datetime
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import machine, time_many  # noqa: E402

from keras_symconv.ops import columns  # noqa: E402

#: (m, F): the RNA and contact networks' shapes and the triangular grid's.
CHANNELS = [(40, 20), (20, 40), (20, 20), (40, 40), (16, 16), (32, 32), (64, 64)]
SIZES = [3, 5, 9, 13]


def steps(m, filters, c, length, rng):
    side = length + c - 1
    x = tf.constant(rng.normal(size=(1, side, side, m)).astype(np.float32))
    kernel = tf.constant(rng.normal(size=(c, c, m, filters)).astype(np.float32))
    out = tf.constant(rng.normal(size=(1, length, length, filters)).astype(np.float32))
    forward = [
        tf.function(lambda _, p=p: columns.column_conv2d(x, kernel, "VALID", p)) for p in (1, 2, 4)
    ]
    kernel_grad = [
        tf.function(lambda _, p=p: columns.column_filter_grad(x, out, kernel, p)) for p in (1, 2, 4)
    ]
    return forward, kernel_grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    lanes = columns.cpu_lanes()
    print(
        f"# packing_speed: {datetime.date.today()}, {machine()}, reps {args.reps}, "
        f"L {args.length}, batch 1, float32, lanes {lanes}"
    )
    print()
    print("| m -> F | C | picked P | conv2d ms | P 2 | P 4 | kernel gradient ms | P 2 | P 4 |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for m, filters in CHANNELS:
        for c in SIZES:
            forward, kernel_grad = steps(m, filters, c, args.length, rng)
            t = time_many(forward + kernel_grad, None, args.reps, warmup=1)
            picked = columns.choose_columns(filters, c, tf.float32)
            print(
                f"| {m} -> {filters} | {c} | {picked} | {1e3 * t[0]:.1f} | {t[1] / t[0]:.3f} "
                f"| {t[2] / t[0]:.3f} | {1e3 * t[3]:.1f} | {t[4] / t[3]:.3f} "
                f"| {t[5] / t[3]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
