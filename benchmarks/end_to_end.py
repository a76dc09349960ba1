"""End to end: the paper's SCNNs (library defaults) against their plain CNNs.

Three models per task: the CNN, the SCNN with the library's defaults, and
the SCNN with its maps in the full layout (``layout="full"``: full maps
between layers, the upper triangle computed and mirrored), the same weights'
function. For the RNA pair (training step at --rna-crop, --rna-batch; inference on one
--rna-infer-length sequence) and the contact-map pair (training step and
inference at --contact-length), with the same hyperparameters:

* time: both models in one process, steps interleaved, median of --reps
  after a warm-up (Keras ``train_on_batch`` / ``predict_on_batch``, no XLA,
  as the command-line tool runs);
* peak memory: each (model, step) in a fresh process, the step being the
  ``tf.function`` of Keras' own ``train_step`` (or of the model's call, for
  inference) that ``train_on_batch`` / ``predict_on_batch`` run, traced
  first; two figures (``timing.step_peak_mib``): the resident-set
  high-water mark of the first run above the resident set before it (with
  oneDNN on, TensorFlow's CPU allocator keeps freed memory, so only a first
  run shows it: one-time costs and the allocator's pool included), and
  TensorFlow's allocator's peak of bytes in use, median of three warm runs
  (the tensors' own memory); the median of three processes each.

    cd benchmarks && python end_to_end.py [--reps 3] [--tasks rna contact] [--modes ...]
"""

import argparse
import datetime
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_symconv.models import (  # noqa: E402
    build_contact_cnn,
    build_contact_scnn,
    build_rna_cnn,
    build_rna_scnn,
)
from timing import (  # noqa: E402
    machine,
    peak_ratio_text,
    peak_text,
    run_memory_child,
    step_peak_mib,
    time_many,
)

from keras_symconv.losses import PairBinaryCrossentropy  # noqa: E402

#: Model names as printed (and passed to --memory-child, without spaces).
MODELS = ("CNN", "SCNN", "SCNN-full-layout")
MODES = ("train", "inference", "train-unknown-side")

BUILDERS = {
    ("rna", "CNN"): build_rna_cnn,
    ("rna", "SCNN"): build_rna_scnn,
    ("rna", "SCNN-full-layout"): functools.partial(build_rna_scnn, layout="full"),
    ("contact", "CNN"): build_contact_cnn,
    ("contact", "SCNN"): build_contact_scnn,
    ("contact", "SCNN-full-layout"): functools.partial(build_contact_scnn, layout="full"),
}


def make_data(task, mode, args, seed=0):
    rng = np.random.default_rng(seed)
    if task == "rna":
        batch, length = (
            (args.rna_batch, args.rna_crop)
            if mode != "inference"
            else (
                1,
                args.rna_infer_length,
            )
        )
        x = np.eye(5, dtype=np.float32)[rng.integers(0, 4, size=(batch, length))]
    else:
        batch, length = (
            (args.contact_batch, args.contact_length)
            if mode != "inference"
            else (
                1,
                args.contact_length,
            )
        )
        pair = rng.normal(size=(batch, length, length, 3)).astype(np.float32)
        x = [
            rng.normal(size=(batch, length, 25)).astype(np.float32),
            pair + np.swapaxes(pair, 1, 2),
        ]
    y = (rng.random((batch, length, length, 1)) < 0.02).astype(np.float32)
    return x, np.maximum(y, np.swapaxes(y, 1, 2))


def make_model(task, name):
    model = BUILDERS[(task, name)]()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=PairBinaryCrossentropy())
    return model


def _unknown_side_spec(a):
    # Batch and channels known; every length axis None, as tf.data gives
    # for variable lengths.
    shape = [a.shape[0]] + [None] * (a.ndim - 2) + [a.shape[-1]]
    return tf.TensorSpec(shape, tf.as_dtype(a.dtype))


def make_step(model, mode, x, y):
    if mode == "train":
        return lambda _: np.asarray(model.train_on_batch(x, y))
    if mode == "train-unknown-side":
        # What fit runs per batch from a tf.data dataset whose length axes
        # are None: Keras' train_step, traced for every side. Timing fit
        # itself would time its epoch-end wait instead (RESULTS.md, "fit's
        # epoch-end wait").
        return memory_step(model, mode, x, y)[0]
    return lambda _: model.predict_on_batch(x)


def memory_step(model, mode, x, y):
    """``(step, trace)`` for :func:`timing.step_peak_mib`: one ``tf.function``.

    What Keras' ``train_on_batch`` / ``fit`` / ``predict_on_batch`` run per
    batch (``model.train_step``, or the model's call with ``training=False``),
    as a ``tf.function`` whose graph can be traced before it runs; the
    unknown-side mode's graph is traced for every side.
    """
    x = tuple(x) if isinstance(x, list) else x
    if mode == "inference":
        function = tf.function(lambda x: model(x, training=False))
        args = (x,)
    else:
        model.optimizer.build(model.trainable_variables)
        signature = None
        if mode == "train-unknown-side":
            signature = [tf.nest.map_structure(_unknown_side_spec, (x, y))]
        function = tf.function(lambda data: model.train_step(data), input_signature=signature)
        args = ((x, y),)
    return (lambda _: tf.nest.flatten(function(*args))[0]), (
        lambda: function.get_concrete_function(*args)
    )


def memory_child(task, name, mode, args):
    """In a fresh process: print the step's peak resident memory in MiB."""
    model = make_model(task, name)
    x, y = make_data(task, mode, args)
    step, trace = memory_step(model, mode, x, y)
    print(*step_peak_mib(step, None, trace))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--tasks", nargs="+", choices=["rna", "contact"], default=["rna", "contact"]
    )
    parser.add_argument("--rna-crop", type=int, default=256)
    parser.add_argument("--rna-batch", type=int, default=4)
    parser.add_argument("--rna-infer-length", type=int, default=1500)
    parser.add_argument("--contact-length", type=int, default=300)
    parser.add_argument("--contact-batch", type=int, default=2)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="train: train_on_batch on NumPy arrays (every graph knows the side); "
        "train-unknown-side: Keras' train_step traced with every length axis None (what "
        "fit runs from such a tf.data dataset), so the graph is built for any side; "
        "inference: predict_on_batch",
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="time only (the memory columns print '-')"
    )
    parser.add_argument(
        "--no-time",
        action="store_true",
        help="memory only (the time columns print '-'): the allocator's figures do not "
        "depend on what else the machine runs, the times do",
    )
    parser.add_argument("--memory-child", nargs=3, metavar=("TASK", "MODEL", "MODE"))
    args = parser.parse_args()
    if args.no_time and args.no_memory:
        parser.error("--no-time and --no-memory leave nothing to measure")
    if args.memory_child:
        memory_child(*args.memory_child, args)
        return
    sizes = [
        f"--rna-crop={args.rna_crop}",
        f"--rna-batch={args.rna_batch}",
        f"--rna-infer-length={args.rna_infer_length}",
        f"--contact-length={args.contact_length}",
        f"--contact-batch={args.contact_batch}",
    ]
    print(
        f"# end_to_end: {datetime.date.today()}, {machine()}, reps {args.reps}, {' '.join(sizes)}"
    )
    print()
    print(
        "| task | step | model | ms | time / CNN | peak MiB (resident / allocator) "
        "| memory / CNN (resident / allocator) |"
    )
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        models = {} if args.no_time else {name: make_model(task, name) for name in MODELS}
        for mode in args.modes:
            if args.no_time:
                times = [None] * len(MODELS)
            else:
                x, y = make_data(task, mode, args)
                steps = [make_step(models[name], mode, x, y) for name in MODELS]
                times = time_many(steps, None, args.reps, warmup=1)
            peaks = [
                None
                if args.no_memory
                else run_memory_child(__file__, [*sizes, "--memory-child", task, name, mode])
                for name in MODELS
            ]
            if mode != "inference":
                what = (
                    f"{mode.replace('-', ' ')}, batch {args.rna_batch} x {args.rna_crop}"
                    if task == "rna"
                    else f"{mode.replace('-', ' ')}, batch {args.contact_batch} x "
                    f"{args.contact_length}"
                )
            else:
                what = (
                    f"inference, 1 x {args.rna_infer_length}"
                    if task == "rna"
                    else f"inference, 1 x {args.contact_length}"
                )
            for name, t, m in zip(MODELS, times, peaks, strict=True):
                print(
                    f"| {task} | {what} | {name} | "
                    + ("- | - " if t is None else f"{1e3 * t:.0f} | {t / times[0]:.3f} ")
                    + (
                        "| - | - |"
                        if m is None
                        else f"| {peak_text(m)} | {peak_ratio_text(m, peaks[0])} |"
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
