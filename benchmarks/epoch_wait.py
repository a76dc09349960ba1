"""The wait at the end of a ``fit`` epoch with tf.data autotuning on.

``model.fit`` makes a new iterator over a tf.data dataset each epoch and
deletes it at the epoch's end. With autotuning on, the deletion waits for
the autotuner to wake from its current sleep, whose period doubles from
10 ms; an epoch's time is then rounded up to about 10 ms x (2^k - 1). The
package's pipelines turn autotuning off (``pipeline_options``).

This script trains the RNA SCNN (library defaults) on synthetic structures
from ``rna_training_dataset`` for one-epoch ``fit`` calls, alternating the
pipeline as the package builds it (autotuning off) with the same pipeline
with autotuning on, and prints each epoch's time, the sum of its steps'
times (measured by a callback), the means and the worst excess.

    cd benchmarks && python epoch_wait.py [--epochs 6] [--steps 6] [--crop 96]
"""

import argparse
import datetime
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_symconv.models import build_rna_scnn  # noqa: E402
from timing import machine  # noqa: E402

from keras_symconv import data  # noqa: E402
from keras_symconv.data.pipeline import rna_training_dataset  # noqa: E402
from keras_symconv.losses import PairBinaryCrossentropy  # noqa: E402


class StepClock(keras.callbacks.Callback):
    """Sums the time between each batch's begin and end."""

    def on_train_batch_begin(self, batch, logs=None):
        self.begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.total += time.perf_counter() - self.begin

    def on_epoch_begin(self, epoch, logs=None):
        self.total = 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per setting")
    parser.add_argument("--steps", type=int, default=6, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=96)
    args = parser.parse_args()

    structures = data.synthetic_rna_dataset(args.steps * args.batch, args.crop, args.crop + 40)
    built = rna_training_dataset(structures, args.batch, max_length=args.crop, seed=0)
    on = tf.data.Options()
    on.autotune.enabled = True
    settings = {"autotune off (package)": built, "autotune on": built.with_options(on)}
    for name, ds in settings.items():
        assert ds.options().autotune.enabled == ("on" in name.split("(")[0]), name

    model = build_rna_scnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=PairBinaryCrossentropy())
    clock = StepClock()
    for ds in settings.values():  # warm-up: trace every window shape
        model.fit(ds, epochs=1, verbose=0)
    epoch = {name: [] for name in settings}
    steps = {name: [] for name in settings}
    for _ in range(args.epochs):
        for name, ds in settings.items():
            start = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0, callbacks=[clock])
            epoch[name].append(time.perf_counter() - start)
            steps[name].append(clock.total)

    print(
        f"# epoch_wait: {datetime.date.today()}, {machine()}, RNA SCNN, "
        f"{args.steps} batches of {args.batch} x <= {args.crop} per epoch, "
        f"{args.epochs} epochs per setting, alternating"
    )
    print()
    print(
        "| pipeline | epoch s (each) | steps s (each) | mean epoch s "
        "| mean epoch - steps s | worst epoch - steps s |"
    )
    print("|---|---|---|---|---|---|")
    for name in settings:
        e, s = np.array(epoch[name]), np.array(steps[name])
        print(
            f"| {name} | {' '.join(f'{v:.2f}' for v in e)} | {' '.join(f'{v:.2f}' for v in s)} "
            f"| {e.mean():.2f} | {(e - s).mean():.2f} | {(e - s).max():.2f} |"
        )
    off, on_ = (np.mean(epoch[name]) for name in settings)
    print()
    print(f"mean epoch time, autotune off / on: {off / on_:.3f}")


if __name__ == "__main__":
    main()
