"""Writes tests/data/layers_0_1_0.keras: every registered layer, saved by version 0.1.0."""

import pathlib

import keras
import numpy as np

import keras_symconv as ks

HERE = pathlib.Path(__file__).parent
keras.utils.set_random_seed(3)
L, n = 12, 3
seq = keras.Input((L, n), name="seq")
items = keras.Input((2,), dtype="int32", name="items")
pair = ks.SelfCartesian()(seq)
g = ks.SymmetryGenerating2D(4, 3, activation="relu", name="gen")(pair)
gu = ks.SymmetryGenerating2D(4, 3, layout="upper", name="gen_upper")(pair)
f = ks.FusedSymmetryGenerating2D(4, 3, name="fused", kernel_initializer="half_glorot_normal")(seq)
fu = ks.FusedSymmetryGenerating2D(4, 1, layout="upper", name="fused_upper")(seq)
p = ks.SymmetryPreserving2D(4, 3, compute="triangular", name="pres_tri")(
    keras.layers.Concatenate()([g, f])
)
pf = ks.SymmetryPreserving2D(4, 5, compute="full", dilation_rate=2, name="pres_full")(p)
u = ks.UpperBatchNormalization(name="ubn")(keras.layers.Concatenate()([gu, fu]))
u = ks.SymmetryPreserving2D(4, 3, layout="upper", name="pres_upper")(u)
u = ks.RunAfter()([u, ks.ToUpper()(pf)])
full = ks.FromUpper()(u)
out = ks.Symmetrize()(keras.layers.Concatenate()([full, pf]))
vec = keras.layers.GlobalAveragePooling2D()(out)
scores = ks.ItemScorer(7, name="scorer")([vec, items])
model = keras.Model([seq, items], [out, scores])
# Non-trivial batch-norm statistics.
model.compile("adam", ["mse", "mse"])
rng = np.random.default_rng(0)
x = rng.normal(size=(2, L, n)).astype("float32")
it = np.array([[1, 5], [0, 6]], "int32")
model.fit(
    [x, it], [np.zeros((2, L, L, 8), "float32"), np.zeros((2, 2), "float32")], epochs=1, verbose=0
)
y, s = model.predict([x, it], verbose=0)
model.save(HERE / "layers_0_1_0.keras")
np.savez(HERE / "layers_0_1_0.npz", x=x, items=it, maps=y, scores=s)
print(y.shape, s.shape, model.count_params())
