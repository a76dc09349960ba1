# %% [markdown]
# # Sequential recommendation with CosRec and SCosRec
#
# CosRec reads the last L = 5 items of a user as the 5 x 5 table of all pairs
# of their embeddings and scores the next items with a small 2D CNN. That
# table is symmetric up to the order of the two halves, so the symmetric
# layers apply: SCosRec's first convolution is symmetry generating, all
# others symmetry preserving, every feature map is symmetric, and the 3 x 3
# kernels hold 6 of their 9 entries.
#
# This tutorial goes from an interaction file to trained models and the
# field's evaluation (MAP over the full ranking, precision and recall at 1, 5
# and 10), then saves, reloads and exports the model for serving.
#
#     python tutorials/04_sequential_recommendation.py [OUT_DIR] [--data FILE ...]
#         [--users N] [--epochs N] [--embedding-dim D]
#
# Without `--data` it writes a synthetic interaction file (users following
# noisy routes through the items: *not* real behaviour) so it runs anywhere.
# Point `--data` at `user item [rating]` files (each user's lines in time
# order), e.g. `../shared/data/recsys/gowalla/validation.txt
# ../shared/data/recsys/gowalla/test.txt`.

# %%
import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_symconv.models import (  # noqa: E402
    all_items_model,
    build_cosrec,
    build_scosrec,
    evaluate_recommender,
    score_all_items,
)

from keras_symconv.data import (  # noqa: E402
    last_items,
    read_interactions,
    rec_training_dataset,
    sliding_windows,
    split_by_time,
)
from keras_symconv.losses import SampledBinaryCrossentropy  # noqa: E402
from keras_symconv.metrics import ranking_metrics  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out", nargs="?", default=None)
parser.add_argument("--data", nargs="+", default=None)
parser.add_argument("--users", type=int, default=400)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--embedding-dim", type=int, default=50)
args, _ = parser.parse_known_args(sys.argv[1:])
out_dir = args.out or tempfile.mkdtemp(prefix="symconv_rec_")
os.makedirs(out_dir, exist_ok=True)
keras.utils.set_random_seed(0)

# %% [markdown]
# ## 1. Interactions
# One line per interaction, `user item [rating]`; ids are any tokens. Each
# user's lines are in time order (users may be interleaved). Without data, we
# write users who walk along one of 8 routes of 10 items, skipping ahead now
# and then, so that the next items depend on the recent ones.

# %%
if args.data:
    paths = args.data
else:
    rng = np.random.default_rng(0)
    routes = rng.permutation(80).reshape(8, 10)
    lines = []
    for u in range(args.users):
        route, position = routes[rng.integers(8)], int(rng.integers(10))
        for _ in range(int(rng.integers(8, 16))):
            lines.append(f"user{u} item{route[position % 10]} 1")
            position += 1 + int(rng.random() < 0.2)
    paths = [os.path.join(out_dir, "interactions.txt")]
    with open(paths[0], "w") as handle:
        handle.write("\n".join(lines) + "\n")

interactions = read_interactions(paths)
print(
    f"read {interactions.num_interactions} interactions of {interactions.num_users} users "
    f"and {interactions.num_items - 1} items"
)

# %% [markdown]
# Dense ids: users from 0, items from 1 (0 pads short sequences). Each user's
# history is split by time: the first 70 % for training, the next 10 % for
# validation (choosing the epoch), the last 20 % for the test.

# %%
split = split_by_time(interactions, (0.7, 0.1, 0.2))
counts = [sum(len(s) for s in part) for part in (split.train, split.valid, split.test)]
print("train / validation / test interactions:", " / ".join(map(str, counts)))

# %% [markdown]
# Training examples are CosRec's sliding windows: 5 items in, the 3 next
# items as targets; each target gets 3 negatives drawn from the items the
# user has not seen, fresh every epoch and reproducible from the seed.

# %%
users, inputs, targets = sliding_windows(split.train, 5, 3)
print(f"{len(users)} windows; user {users[0]}: {inputs[0].tolist()} -> {targets[0].tolist()}")
dataset, steps = rec_training_dataset(split.train, split.num_items, batch_size=64, seed=0)
x, y = next(iter(dataset))
print("a batch:", {k: tuple(v.shape) for k, v in x.items()}, "labels", y[0].numpy().tolist())

# %% [markdown]
# ## 2. The models
# With MovieLens-1M's sizes (6,040 users, 3,416 items + padding) the
# trainable counts are the paper's Table I (1.983M and 1.730M).

# %%
ml1m = [build(6040, 3417) for build in (build_cosrec, build_scosrec)]
print("MovieLens-1M sizes, trainable parameters: CosRec {:,} SCosRec {:,}".format(
    *(sum(int(np.prod(w.shape)) for w in m.trainable_weights) for m in ml1m)
))  # fmt: skip

models = {
    "CosRec": build_cosrec(split.num_users, split.num_items, embedding_dim=args.embedding_dim),
    "SCosRec": build_scosrec(split.num_users, split.num_items, embedding_dim=args.embedding_dim),
}
for model in models.values():
    model.compile(keras.optimizers.Adam(1e-3), SampledBinaryCrossentropy())

# Every SCosRec feature map is symmetric: look at the first block's.
probe = keras.Model(models["SCosRec"].inputs, models["SCosRec"].get_layer("block1_relu1").output)
z = probe({k: v[:8] for k, v in x.items()}).numpy()
print(f"SCosRec first feature map: |Z - Z^T| = {np.abs(z - z.transpose(0, 2, 1, 3)).max():.2e}")

# %% [markdown]
# ## 3. Training, the epoch chosen on validation
# The model outputs logits for the items it is given (targets and
# negatives). For evaluation, `evaluate_recommender` scores *every* item from
# the last 5 items of each user's history, removes the items already seen,
# and ranks (CosRec's protocol).

# %%
best = {}
for epoch in range(args.epochs):
    line = [f"epoch {epoch + 1}"]
    for name, model in models.items():
        model.fit(dataset, epochs=1, verbose=0)
        valid_map = evaluate_recommender(model, split, "valid")["map"]
        if valid_map > best.get(name, (-1.0,))[0]:
            best[name] = (valid_map, epoch + 1)
            model.save(os.path.join(out_dir, f"{name.lower()}.keras"))
        line.append(f"{name} valid MAP {valid_map:.4f}")
    print("  ".join(line))

# %% [markdown]
# ## 4. Test
# The chosen models on the test part. A random ranking gives the floor.

# %%
history = split.history("test")
rng = np.random.default_rng(1)
random_scores = rng.random((split.num_users, split.num_items))
floor = ranking_metrics(
    random_scores, split.test, [np.append(h, 0) for h in history], ks=(1, 5, 10)
)
print(f"random ranking: MAP {floor['map']:.4f}  Prec@5 {floor['precision@5']:.4f}")
chosen = {}
for name in models:
    chosen[name] = keras.saving.load_model(os.path.join(out_dir, f"{name.lower()}.keras"))
    test = evaluate_recommender(chosen[name], split, "test")
    print(
        f"{name} (epoch {best[name][1]}): test MAP {test['map']:.4f}  "
        f"Prec@1 {test['precision@1']:.4f}  Prec@5 {test['precision@5']:.4f}  "
        f"Recall@10 {test['recall@10']:.4f}"
    )

# %% [markdown]
# Top 5 recommendations for one user, in raw ids (the maps go back).

# %%
item_name = {v: k for k, v in interactions.item_map.items()}
user_name = {v: k for k, v in interactions.user_map.items()}
u = 0
scores = score_all_items(chosen["SCosRec"], [u], last_items([history[u]], 5))[0]
scores[np.append(history[u], 0)] = -np.inf  # seen items and padding
top = np.argsort(-scores)[:5]
print(f"{user_name[u]} recently: {[item_name[i] for i in history[u][-5:]]}")
print(f"  recommended: {[item_name[i] for i in top]}; next in fact: "
      f"{[item_name[i] for i in split.test[u]]}")  # fmt: skip

# %% [markdown]
# ## 5. Saving and serving
# `.keras` files load with `safe_mode=True` after `import keras_symconv`
# (the layers are registered). For serving, export the all-items scorer: it
# maps `(user, last 5 items)` to a score per item.

# %%
model = chosen["SCosRec"]
path = os.path.join(out_dir, "scosrec.keras")
reloaded = keras.saving.load_model(path, safe_mode=True)
feed = {k: v[:16] for k, v in x.items()}
print("reloaded .keras equal:", bool(np.allclose(reloaded(feed), model(feed), atol=1e-6)))
export_dir = os.path.join(out_dir, "scosrec_savedmodel")
all_items_model(model).export(export_dir, verbose=False)
loaded = tf.saved_model.load(export_dir)  # keep it: it owns the variables
served = loaded.serve([feed["user"], feed["sequence"]]).numpy()
expected = all_items_model(model)({"user": feed["user"], "sequence": feed["sequence"]})
print(
    f"SavedModel: scores {served.shape}, max diff from Keras {np.abs(served - expected).max():.1e}"
)
