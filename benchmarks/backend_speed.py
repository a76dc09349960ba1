"""Speed on one Keras backend: the symmetric layers against Conv2D, the RNA SCNN against the CNN.

Runs on whichever backend ``--backend`` names (TensorFlow, JAX or
PyTorch), with Keras' own ``predict_on_batch`` and ``train_on_batch``, so
the same command measures every backend the same way. Side by side in one
process: the steps of the models compared are interleaved, median of
``--reps`` after a warm-up (the first calls trace and compile).

- Layers: one ``SymmetryPreserving2D`` (and the fused generating layer
  against ``SelfCartesian`` + ``Conv2D``) against a ``Conv2D`` of the same
  shape, forward (``predict_on_batch``) and forward+backward with an SGD
  update (``train_on_batch``, mean-squared loss to zeros).
- The RNA SCNN (the builders' defaults) against the RNA CNN: a training
  step (batch x crop, Adam, the paper's loss) and inference on one
  sequence.

    python benchmarks/backend_speed.py --backend jax
    python benchmarks/backend_speed.py --backend torch --crop 256 --reps 3

Prints one Markdown table per part and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from functools import partial


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("tensorflow", "jax", "torch"), required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--side", type=int, default=256, help="layer maps: side L")
    p.add_argument("--channels", type=int, default=64, help="layer maps: channels in and out")
    p.add_argument("--kernel", type=int, default=5, help="layer kernel size C")
    p.add_argument("--crop", type=int, default=256, help="RNA training crop")
    p.add_argument("--batch", type=int, default=4, help="RNA training batch")
    p.add_argument("--infer-length", type=int, default=1000, help="RNA inference length")
    p.add_argument("--tiny", action="store_true", help="tiny RNA models (a smoke test)")
    p.add_argument(
        "--layouts",
        nargs="+",
        choices=("full", "upper"),
        help="time one RNA SCNN per map layout (default: the builder's default only)",
    )
    return p.parse_args(argv)


def time_side_by_side(steps, reps):
    """Median seconds of each step, interleaved, after one warm-up call each."""
    for step in steps:
        step()
    times = [[] for _ in steps]
    for _ in range(reps):
        for step, record in zip(steps, times, strict=True):
            start = time.perf_counter()
            step()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def _layer_model(keras, inputs, outputs):
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(1e-6), "mse")
    return model


def layers_table(args, keras, ks, np):
    rng = np.random.default_rng(0)
    side, ch, c = args.side, args.channels, args.kernel
    x = rng.normal(size=(1, side, side, ch)).astype("float32")
    x = x + x.transpose(0, 2, 1, 3)
    inp = keras.Input((side, side, ch))
    conv = _layer_model(keras, inp, keras.layers.Conv2D(ch, c, padding="same")(inp))
    sym = _layer_model(keras, inp, ks.SymmetryPreserving2D(ch, c)(inp))
    seq = rng.normal(size=(1, side, 20)).astype("float32")
    sinp = keras.Input((side, 20))
    pairs = ks.SelfCartesian()(sinp)
    unfused = _layer_model(keras, sinp, keras.layers.Conv2D(40, 13, padding="same")(pairs))
    fused = _layer_model(keras, sinp, ks.FusedSymmetryGenerating2D(40, 13)(sinp))
    rows = []
    for title, base, model, data, shape in (
        ("SymmetryPreserving2D vs Conv2D", conv, sym, x, f"1 x {side}, {ch} -> {ch}, C {c}"),
        (
            "FusedSymmetryGenerating2D vs SelfCartesian + Conv2D",
            unfused,
            fused,
            seq,
            f"1 x {side}, 20 -> 40, C 13",
        ),
    ):
        y = np.zeros(tuple(int(d) for d in model.output.shape[1:]), "float32")[None]
        pair = (base, model)
        fwd = time_side_by_side([partial(m.predict_on_batch, data) for m in pair], args.reps)
        train = time_side_by_side([partial(m.train_on_batch, data, y) for m in pair], args.reps)
        rows.append(
            f"| {title} | {shape} | {1000 * fwd[0]:.0f} | {fwd[1] / fwd[0]:.3f} "
            f"| {1000 * train[0]:.0f} | {train[1] / train[0]:.3f} |"
        )
    return [
        "| layers | shape | baseline fwd ms | fwd ratio | baseline train ms | train ratio |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def rna_models_table(args, keras, ks, np):
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    tiny = {}
    if args.tiny:
        tiny = {"lstm_units": 4, "dense_units": 3, "first_filters": 6, "side_filters": 2}
        tiny.update(block1=((5, 4),), block2=((3, 4),), block3=((3, 4),))
    rng = np.random.default_rng(1)
    x = np.eye(5, dtype="float32")[rng.integers(0, 5, (args.batch, args.crop))]
    y = (rng.random((args.batch, args.crop, args.crop, 1)) < 0.02).astype("float32")
    y = np.maximum(y, y.transpose(0, 2, 1, 3))
    one = np.eye(5, dtype="float32")[rng.integers(0, 5, (1, args.infer_length))]
    builds = [("CNN", build_rna_cnn)]
    if args.layouts:
        builds += [
            (f"SCNN {layout}", partial(build_rna_scnn, layout=layout)) for layout in args.layouts
        ]
    else:
        builds.append(("SCNN", build_rna_scnn))
    models = []
    for _, build in builds:
        model = build(**tiny)
        # Weighted binary cross-entropy as the paper's loss, written with
        # keras.ops so that every backend runs it.
        model.compile(keras.optimizers.Adam(2e-3), _weighted_bce(keras, 5.0))
        models.append(model)
    train = time_side_by_side([lambda m=m: m.train_on_batch(x, y) for m in models], args.reps)
    infer = time_side_by_side(
        [lambda m=m: m.predict_on_batch(one) for m in models], max(1, args.reps - 1)
    )
    names = [name for name, _ in builds[1:]]
    rows = [
        "| RNA step | CNN s | " + " | ".join(f"{n} s | {n} / CNN" for n in names) + " |",
        "|---|---|" + "---|---|" * len(names),
    ]
    for what, times in (
        (f"training, batch {args.batch} x {args.crop}", train),
        (f"inference, 1 x {args.infer_length}", infer),
    ):
        cells = " | ".join(f"{t:.2f} | {t / times[0]:.3f}" for t in times[1:])
        rows.append(f"| {what} | {times[0]:.2f} | {cells} |")
    return rows


def _weighted_bce(keras, positive_weight):
    ops = keras.ops

    def loss(y_true, y_pred):
        p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = positive_weight * y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p)
        return -ops.mean(terms)

    return loss


def main(argv=None):
    from cpu import cpu_name

    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    import keras_symconv as ks

    version = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[args.backend]
    backend_version = __import__(version).__version__
    print(
        f"# backend_speed: {time.strftime('%Y-%m-%d')}, {cpu_name()} ({platform.machine()}), "
        f"{os.cpu_count()} cores, Keras {keras.__version__}, {args.backend} {backend_version}, "
        f"Python {platform.python_version()}, reps {args.reps}"
    )
    print()
    print("\n".join(layers_table(args, keras, ks, np)))
    print()
    print("\n".join(rna_models_table(args, keras, ks, np)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
