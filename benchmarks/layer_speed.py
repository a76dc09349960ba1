"""Speed of the symmetric layers against keras.layers.Conv2D of the same shape.

Forward and forward+backward (gradients w.r.t. the weights and the input) of
SymmetryGenerating2D and SymmetryPreserving2D, each timed side by side with a
Conv2D on the same input, interleaved, median of --reps repetitions after a
warm-up. Prints a Markdown table of time ratios (symmetric / Conv2D).

    python benchmarks/layer_speed.py [--reps 15] [--jit] [--grid quick]
"""

import argparse
import datetime
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import machine, make_steps, time_pair  # noqa: E402

import keras_symconv as ks  # noqa: E402

# (batch, L, input channels, filters, kernel size C)
GRIDS = {
    "default": [
        (2, 128, 32, 32, 3),
        (2, 128, 32, 32, 5),
        (2, 128, 32, 32, 13),
        (2, 256, 16, 16, 3),
        (2, 256, 16, 16, 5),
        (2, 256, 16, 16, 13),
        (1, 256, 40, 20, 13),
    ],
    "quick": [(2, 64, 8, 8, 3), (2, 64, 8, 8, 13)],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    args = parser.parse_args()

    print(
        f"# layer_speed: {datetime.date.today()}, {machine()}, "
        f"jit_compile={args.jit}, reps={args.reps}"
    )
    print()
    print(
        "| layer | batch | L | in | F | C | conv fwd ms | fwd ratio "
        "| conv fwd+bwd ms | fwd+bwd ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, length, channels, filters, c in GRIDS[args.grid]:
        for layer_cls in (ks.SymmetryGenerating2D, ks.SymmetryPreserving2D):
            if layer_cls is ks.SymmetryGenerating2D:
                seq = rng.normal(size=(batch, length, channels // 2)).astype(np.float32)
                x = ks.SelfCartesian()(seq)
            else:
                a = rng.normal(size=(batch, length, length, channels)).astype(np.float32)
                x = tf.constant(a + np.swapaxes(a, 1, 2))
            # The full computation: this table measures what the packed kernel
            # costs; the triangular compute has its own (triangular_speed.py).
            extra = {"compute": "full"} if layer_cls is ks.SymmetryPreserving2D else {}
            sym = layer_cls(filters, c, padding="same", **extra)
            conv = keras.layers.Conv2D(filters, c, padding="same")
            sym.build(x.shape)
            conv.build(x.shape)
            sym_f, sym_fb = make_steps(sym, x, args.jit)
            conv_f, conv_fb = make_steps(conv, x, args.jit)
            s_f, c_f = time_pair(sym_f, conv_f, x, args.reps)
            s_fb, c_fb = time_pair(sym_fb, conv_fb, x, args.reps)
            worst = max(worst, s_f / c_f, s_fb / c_fb)
            print(
                f"| {layer_cls.__name__} | {batch} | {length} | {channels} | {filters} "
                f"| {c} | {1e3 * c_f:.1f} | {s_f / c_f:.3f} | {1e3 * c_fb:.1f} "
                f"| {s_fb / c_fb:.3f} |",
                flush=True,
            )
    print()
    print(f"worst ratio: {worst:.3f}")


if __name__ == "__main__":
    main()
