# %% [markdown]
# # Symmetric layers in five minutes
#
# Many problems map a sequence of length L to a symmetric L x L matrix: base
# pairs of an RNA, contacts of a protein, pairs of items. keras-symconv's
# layers keep every feature map symmetric *by construction*, with about half
# the parameters of a plain `Conv2D`.
#
# This script (cells marked `# %%`, runnable top to bottom on a CPU in well
# under a minute) builds a small symmetric network, shows the symmetry, the
# parameter saving and the gradient rule, trains it briefly and exports it.
#
#     python tutorials/01_symmetric_layers.py [OUTPUT_DIR]

# %%
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_symconv as ks  # noqa: E402

keras.utils.set_random_seed(0)
out_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="symconv_")
os.makedirs(out_dir, exist_ok=True)

# %% [markdown]
# ## 1. A symmetric network and its plain twin
# `SelfCartesian` turns a sequence (L, n) into pairs (L, L, 2n),
# `SymmetryGenerating2D` makes the first symmetric map from it, and
# `SymmetryPreserving2D` keeps maps symmetric. The twin uses `Conv2D`.


# %%
def network(symmetric, n=4):
    inputs = keras.Input((None, n))  # any sequence length
    x = ks.SelfCartesian()(inputs)
    first = ks.SymmetryGenerating2D if symmetric else keras.layers.Conv2D
    conv = ks.SymmetryPreserving2D if symmetric else keras.layers.Conv2D
    x = first(16, 1, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = conv(16, 5, padding="same", activation="relu")(x)
    x = conv(16, 3, padding="same", activation="relu")(x)
    outputs = conv(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


scnn, cnn = network(True), network(False)
x = np.random.default_rng(1).normal(size=(2, 30, 4)).astype("float32")
print(f"largest |Z - Z^T|, symmetric network: {ks.asymmetry(scnn(x)):.2e}")
print(f"largest |Z - Z^T|, plain Conv2D twin: {ks.asymmetry(cnn(x)):.2e}")

# %% [markdown]
# ## 2. About half the parameters
# A symmetric C x C kernel has C(C+1)/2 free positions instead of C*C, and a
# generating kernel also ties its two channel halves.


# %%
def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


print(f"trainable parameters: symmetric {trainable(scnn):,} vs plain {trainable(cnn):,}")
for layer in scnn.layers:
    if isinstance(layer, (ks.SymmetryGenerating2D, ks.SymmetryPreserving2D)):
        print(
            f"  {layer.name}: packed kernel {tuple(layer.packed_kernel.shape)}"
            f" -> full kernel {tuple(layer.kernel.shape)}"
        )

# %% [markdown]
# ## 3. The update rule
# Only the packed kernel is trained. Its gradient is the paper's rule: the sum
# of the full kernel's gradient over every entry a packed weight fills. Check
# it against autodiff of a plain gather (the tied parameterization).

# %%
layer = scnn.layers[2]  # the generating layer
y = ks.SelfCartesian()(x)
with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(y) ** 2)
rule = tape.gradient(loss, layer.packed_kernel)

packed = tf.convert_to_tensor(layer.packed_kernel)
idx = ks.ops.kernels.symmetric_index_map(layer.kernel_size)
with tf.GradientTape() as tape:
    tape.watch(packed)
    full = tf.gather(packed, idx)
    full = tf.reshape(tf.concat([full, full], axis=1), layer.kernel.shape)
    loss = tf.reduce_sum((tf.nn.convolution(y, full, padding="SAME") + layer.bias) ** 2)
autodiff = tf.convert_to_tensor(tape.gradient(loss, packed))
print(f"max |rule - autodiff| = {float(tf.reduce_max(tf.abs(rule - autodiff))):.2e}")

# %% [markdown]
# ## 4. Train briefly on a symmetric pair task
# Target: pair (i, j) is 1 when the two positions' features point the same way.

# %%
rng = np.random.default_rng(2)
train_x = rng.normal(size=(256, 20, 4)).astype("float32")
train_y = (np.einsum("bin,bjn->bij", train_x, train_x) > 0).astype("float32")[..., None]
scnn.compile(
    optimizer=keras.optimizers.AdamW(3e-3), loss="binary_crossentropy", metrics=["binary_accuracy"]
)
history = scnn.fit(train_x, train_y, batch_size=16, epochs=3, verbose=2)
print(f"symmetric after training: |Z - Z^T| = {ks.asymmetry(scnn.predict(x, verbose=0)):.2e}")

# %% [markdown]
# ## 5. Save, export and serve
# `.keras` files load with `safe_mode=True` (no Lambda layers). `export`
# writes a SavedModel that serves any sequence length. `to_conv2d()` turns a
# symmetric layer into a stock `Conv2D` with the same outputs.

# %%
keras_path = os.path.join(out_dir, "scnn.keras")
scnn.save(keras_path)
reloaded = keras.saving.load_model(keras_path, safe_mode=True)
print("reloaded .keras equal:", np.array_equal(reloaded(x).numpy(), scnn(x).numpy()))

export_dir = os.path.join(out_dir, "scnn_savedmodel")
scnn.export(export_dir, verbose=False)
served = tf.saved_model.load(export_dir)
for length in (30, 45):
    seq = rng.normal(size=(1, length, 4)).astype("float32")
    diff = np.abs(served.serve(seq).numpy() - scnn(seq).numpy()).max()
    print(f"SavedModel serves L={length}: max diff from Keras {diff:.1e}")

plain = layer.to_conv2d()
print("to_conv2d equal:", np.array_equal(plain(y).numpy(), layer(y).numpy()))
print(f"outputs in {out_dir}")
