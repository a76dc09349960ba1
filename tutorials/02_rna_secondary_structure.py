# %% [markdown]
# # RNA secondary structure with a symmetric network
#
# Read structure files, build the paper's SCNN, train it briefly with the
# paper's random crops and weighted loss, evaluate with the paper's metrics,
# plot the predicted pair map and export the model for serving.
#
#     python tutorials/02_rna_secondary_structure.py [OUT_DIR] [--data PATH ...]
#         [--count N] [--epochs N]
#
# Without `--data` it writes synthetic RNAs (random nested structures, *not*
# real molecules: see `keras_symconv.data.synthetic`) to `.ct` files first, so
# it runs anywhere. Point `--data` at a folder of `.ct`/`.bpseq`/dot-bracket
# files (e.g. the paper's test set) to use real ones; sequences are cropped
# to `--crop` bases for training.

# %%
import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_symconv.models import build_rna_cnn, build_rna_scnn  # noqa: E402

import keras_symconv as ks  # noqa: E402
from keras_symconv import data  # noqa: E402
from keras_symconv.data.pipeline import rna_training_dataset  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out", nargs="?", default=None)
parser.add_argument("--data", nargs="+", default=None)
parser.add_argument("--count", type=int, default=120)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--crop", type=int, default=64)
args, _ = parser.parse_known_args(sys.argv[1:])
out_dir = args.out or tempfile.mkdtemp(prefix="symconv_rna_")
os.makedirs(out_dir, exist_ok=True)
keras.utils.set_random_seed(0)

# %% [markdown]
# ## 1. Read structure files
# `read_structures` reads files or whole folders (`.ct`, `.bpseq`,
# dot-bracket, the paper's 5-line format) into `RNAStructure` records; a
# sub-folder becomes the record's family.

# %%
if args.data:
    structures = data.read_structures(args.data)
else:
    folder = os.path.join(out_dir, "structures")
    os.makedirs(folder, exist_ok=True)
    for s in data.synthetic_rna_dataset(args.count, 50, 100, seed=1):
        data.write_ct(os.path.join(folder, f"{s.name}.ct"), [s])
    structures = data.read_structures(folder)
print(f"read {len(structures)} structures")
example = structures[0]
print(f"{example.name}: {len(example)} nt, {len(example.pairs)} pairs")
print(example.sequence[:80])
print(data.to_dot_bracket(example)[:80])

rng = np.random.default_rng(0)
order = rng.permutation(len(structures))
n_valid = max(2, len(structures) // 10)
valid = [structures[k] for k in order[:n_valid]]
train = [structures[k] for k in order[n_valid:]]

# %% [markdown]
# ## 2. The paper's networks
# Same hyperparameters; the SCNN has about 60 % of the CNN's parameters and
# a symmetric output by construction.

# %%
scnn = build_rna_scnn(batch_norm_momentum=0.9)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


print(f"trainable parameters: SCNN {trainable(scnn):,}, CNN {trainable(build_rna_cnn()):,}")

# %% [markdown]
# ## 3. Train briefly
# Random crops as in the paper (one window length per batch, bounded by the
# batch's shortest sequence), binary cross-entropy on the upper triangle with
# positives weighted 5.

# %%
scnn.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss=ks.losses.PairBinaryCrossentropy(positive_weight=5.0),
    metrics=[ks.metrics.PairMetric("accuracy")],
)
steps = max(1, len(train) // 8)
dataset = rna_training_dataset(train, batch_size=8, max_length=args.crop, seed=0).repeat()
history = scnn.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, shuffle=False, verbose=2)

# %% [markdown]
# ## 4. Evaluate with the paper's metrics
# Pairs are decoded greedily from the upper triangle (threshold 0.5); PPV,
# sensitivity and their mean (accuracy) per sequence, then averaged.


# %%
def predict(structure):
    prob = scnn(structure.one_hot()[None], training=False).numpy()[0, :, :, 0]
    np.fill_diagonal(prob, 0.0)
    return prob


probs = [predict(s) for s in valid]
natives = [s.contact_map() for s in valid]
authors = ks.metrics.pair_metrics(natives, probs)
strict = ks.metrics.pair_metrics(natives, probs, strict=True)
print(
    f"validation (authors' decoding): PPV {authors['ppv']:.3f} "
    f"Sen {authors['sensitivity']:.3f} Acc {authors['accuracy']:.3f}"
)
print(f"validation (strict decoding):   Acc {strict['accuracy']:.3f}")
print(
    f"largest asymmetry of a predicted map: {max(ks.asymmetry(p, axes=(0, 1)) for p in probs):.1e}"
)

# %% [markdown]
# ## 5. Plot native vs predicted

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(natives[0], vmin=0, vmax=1)
axes[0].set_title(f"native {valid[0].name}")
axes[1].imshow(probs[0], vmin=0, vmax=1)
axes[1].set_title("SCNN probability")
png = os.path.join(out_dir, "rna_heatmap.png")
fig.savefig(png, dpi=90)
plt.close(fig)
print(f"heatmap: {png}")

# %% [markdown]
# ## 6. Save and export
# The SavedModel serves any sequence length.

# %%
scnn.save(os.path.join(out_dir, "rna_scnn.keras"))
export_dir = os.path.join(out_dir, "rna_scnn_savedmodel")
scnn.export(export_dir, verbose=False)
served = tf.saved_model.load(export_dir)
x = valid[0].one_hot()[None]
diff = np.abs(served.serve(tf.constant(x)).numpy() - scnn(x).numpy()).max()
print(f"SavedModel max diff from Keras: {diff:.1e}")
