# %% [markdown]
# # Protein contact maps with a symmetric network
#
# From structures to contact maps and input features, a short training run of
# the contact-map SCNN, the field's evaluation (the paper's PPV / Sen / Acc and
# the top-L precision of long-range contacts), and a plot of predicted vs
# true maps.
#
#     python tutorials/03_contact_maps.py [OUT_DIR] [--data FILE_OR_DIR ...]
#         [--count N] [--epochs N] [--crop N]
#
# Without `--data` it writes random-walk chains (C-alpha traces with 3.8 A
# steps: *not* real proteins) to a JSON file first, so it runs anywhere. Point
# `--data` at chain-set JSON (`.json`, `.jsonl`), PDB or mmCIF files (or
# folders of them) for real structures.

# %%
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras_symconv.models import build_contact_cnn, build_contact_scnn  # noqa: E402

import keras_symconv as ks  # noqa: E402
from keras_symconv.data import features, read_protein_files, read_protein_json  # noqa: E402
from keras_symconv.data.contact import contact_example, contact_training_dataset  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out", nargs="?", default=None)
parser.add_argument("--data", nargs="+", default=None)
parser.add_argument("--count", type=int, default=40)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--crop", type=int, default=64)
args, _ = parser.parse_known_args(sys.argv[1:])
out_dir = args.out or tempfile.mkdtemp(prefix="symconv_contact_")
os.makedirs(out_dir, exist_ok=True)
keras.utils.set_random_seed(0)

# %% [markdown]
# ## 1. Structures
# `read_protein_json` reads chain sets (`name`, `seq`, `coords` of N, CA, C,
# O per residue or per atom, `null` or NaN for missing atoms);
# `read_protein_files` reads files and folders of any supported format
# (PDB and mmCIF: one chain of the first model).

# %%
if args.data:
    chains = read_protein_files(args.data)
else:
    rng = np.random.default_rng(0)
    records = []
    for k in range(args.count):
        n = int(rng.integers(40, 90))
        steps = rng.normal(size=(n, 3))
        steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
        ca = np.cumsum(steps, axis=0)
        coords = np.stack([ca - 1.0, ca, ca + 1.0, ca + 2.0], axis=1).round(3).tolist()
        coords[5][1] = None  # a missing C-alpha: masked, never a "non-contact"
        seq = "".join(rng.choice(list(features.AMINO_ACIDS), size=n))
        records.append({"name": f"walk{k:03d}", "seq": seq, "coords": coords})
    path = os.path.join(out_dir, "chains.json")
    with open(path, "w") as handle:
        json.dump(records, handle)
    chains = read_protein_json(path)
print(f"read {len(chains)} chains")

# %% [markdown]
# ## 2. Contact maps and features
# A contact is a C-alpha distance under 8 A. 1D features: one-hot residue,
# hydropathy, charge, volume, position (25 columns, see
# `keras_symconv.data.features`). 2D features: alignment couplings (zero
# without an alignment) and the log sequence separation.

# %%
examples = [contact_example(c) for c in chains]
e = examples[0]
print(
    f"{e.name}: {len(e)} residues, {int(e.contacts.sum() // 2)} contacts, "
    f"{int((e.mask == 0).sum())} masked"
)
print(f"features: 1D {e.sequence_features.shape}, 2D {e.pair_features.shape}")

# Alignment features on a toy alignment in which columns 2 and 7 co-vary.
rng = np.random.default_rng(1)
toy = rng.integers(0, 20, size=(300, 10)).astype(np.int8)
toy[:, 7] = (toy[:, 2] * 3 + 1) % 20
mi = features.mutual_information_apc(toy)
top = np.unravel_index(np.argmax(np.triu(mi, 1)), mi.shape)
print(f"strongest MI-APC coupling in the toy alignment: columns {tuple(int(i) for i in top)}")

# %% [markdown]
# ## 3. The networks and a short training run

# %%
scnn = build_contact_scnn(batch_norm_momentum=0.9)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


print(f"trainable parameters: SCNN {trainable(scnn):,}, CNN {trainable(build_contact_cnn()):,}")
n_valid = max(2, len(examples) // 5)
train, valid = examples[n_valid:], examples[:n_valid]
scnn.compile(
    optimizer=keras.optimizers.Adam(2e-3),
    loss=ks.losses.PairBinaryCrossentropy(positive_weight=5.0),
)
dataset = contact_training_dataset(train, batch_size=4, max_length=args.crop, seed=0).repeat()
scnn.fit(
    dataset, epochs=args.epochs, steps_per_epoch=max(1, len(train) // 4), shuffle=False, verbose=2
)

# %% [markdown]
# ## 4. Evaluate
# The paper's decoded PPV / Sen / Acc, and the precision of the top L/5
# long-range (|i - j| >= 24) predictions. Masked residues are left out.


# %%
def predict(example):
    x = [example.sequence_features[None], example.pair_features[None]]
    prob = scnn(x, training=False).numpy()[0, :, :, 0]
    np.fill_diagonal(prob, 0.0)
    keep = example.mask[:, None] * example.mask[None]
    return prob * keep


probs = [predict(e) for e in valid]
natives = [e.contacts for e in valid]
paper = ks.metrics.pair_metrics(natives, probs)
long_l5 = np.nanmean(
    [
        ks.metrics.contact_precision(e.contacts, p, e.mask)["long_L/5"]
        for e, p in zip(valid, probs, strict=True)
    ]
)
print(
    f"validation: PPV {paper['ppv']:.3f} Sen {paper['sensitivity']:.3f} "
    f"Acc {paper['accuracy']:.3f}, long-range top-L/5 precision {long_l5:.3f}"
)
print(
    f"largest asymmetry of a predicted map: {max(ks.asymmetry(p, axes=(0, 1)) for p in probs):.1e}"
)

# %% [markdown]
# ## 5. Predicted vs true

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(natives[0], vmin=0, vmax=1)
axes[0].set_title(f"true contacts {valid[0].name}")
axes[1].imshow(probs[0], vmin=0, vmax=1)
axes[1].set_title("SCNN probability")
png = os.path.join(out_dir, "contact_heatmap.png")
fig.savefig(png, dpi=90)
plt.close(fig)
print(f"heatmap: {png}")
