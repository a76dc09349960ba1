"""Sequential recommendation: data, pipeline, metrics, loss and the CosRec builders."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_symconv.models import (
    PAPER_COSREC_TRAINABLE_PARAMS,
    all_items_model,
    build_cosrec,
    build_scosrec,
    evaluate_recommender,
    score_all_items,
)

from keras_symconv.data import (
    PAD_ITEM,
    last_items,
    read_interactions,
    rec_training_dataset,
    sliding_windows,
    split_by_time,
)
from keras_symconv.losses import IGNORE_LABEL, SampledBinaryCrossentropy
from keras_symconv.metrics import ranking_metrics

TINY = dict(embedding_dim=4, blocks=(8, 6), fc_units=5)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- reader


def test_read_interactions_maps_ids_in_order_of_first_appearance(tmp_path):
    a = write(tmp_path, "a.txt", "u7 x 1\nu3 y 4.5\nu7 z 1\n\nu3 x\n")
    b = write(tmp_path, "b.txt", "u3 w 1\nu9 x 1\n")
    inter = read_interactions([a, b])
    assert inter.user_map == {"u7": 0, "u3": 1, "u9": 2}
    assert inter.item_map == {"x": 1, "y": 2, "z": 3, "w": 4}
    assert inter.num_items == 5 and inter.num_users == 3 and inter.num_interactions == 6
    # each user's items in file order, the second file after the first
    assert [s.tolist() for s in inter.sequences] == [[1, 3], [2, 1, 4], [1]]
    # the maps of a training run give the same ids; new ids are appended
    again = read_interactions(b, inter.user_map, inter.item_map)
    assert [s.tolist() for s in again.sequences] == [[], [4], [1]]
    more = read_interactions(write(tmp_path, "c.txt", "new q 1\n"), inter.user_map, inter.item_map)
    assert more.user_map["new"] == 3 and more.item_map["q"] == 5
    assert inter.item_map == {"x": 1, "y": 2, "z": 3, "w": 4}  # not modified


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 2 1\n1 2 3 4\n", r"bad\.txt:2: expected 'user item \[rating\]', got 4"),
        ("1 2 1\n\n7\n", r"bad\.txt:3: expected .* got 1 field"),
        ("1 2 1\n1 3 high\n", r"bad\.txt:2: the rating must be a number, got 'high'"),
        ("\n\n", r"bad\.txt: no interactions"),
    ],
)
def test_read_interactions_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_interactions(write(tmp_path, "bad.txt", text))


# --------------------------------------------------------------------------- split, windows


def test_split_by_time_per_user():
    inter = read_interactions_from([list(range(1, 11)), [1, 2, 3, 4], [5, 6], [7, 8, 9]])
    split = split_by_time(inter)
    assert [s.tolist() for s in split.train] == [[1, 2, 3, 4, 5, 6, 7], [1, 2], [5, 6], [7]]
    assert [s.tolist() for s in split.valid] == [[8], [3], [], [8]]
    assert [s.tolist() for s in split.test] == [[9, 10], [4], [], [9]]
    assert [s.tolist() for s in split.history("test")] == [
        list(range(1, 9)),
        [1, 2, 3],
        [5, 6],
        [7, 8],
    ]
    assert split.history("valid") is split.train
    with pytest.raises(ValueError, match="fractions"):
        split_by_time(inter, (0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match="part"):
        split.history("train")


def read_interactions_from(sequences):
    """Interactions whose raw ids are the dense ids (items from 1)."""
    from keras_symconv.data import Interactions

    items = sorted({i for s in sequences for i in s})
    assert items == list(range(1, len(items) + 1))
    return Interactions(
        [np.asarray(s, np.int32) for s in sequences],
        {str(u): u for u in range(len(sequences))},
        {str(i): i for i in items},
    )


def test_sliding_windows_as_cosrec():
    users, inputs, targets = sliding_windows([[1, 2, 3, 4, 5, 6], [], [7, 8]], 3, 2)
    assert users.tolist() == [0, 0, 2]
    assert inputs.tolist() == [[1, 2, 3], [2, 3, 4], [PAD_ITEM, PAD_ITEM, PAD_ITEM]]
    assert targets.tolist() == [[4, 5], [5, 6], [7, 8]]
    users, inputs, targets = sliding_windows([[1, 2, 3]], 3, 2)
    assert inputs.tolist() == [[0, 0, 1]] and targets.tolist() == [[2, 3]]
    assert last_items([[1, 2, 3, 4], [5], []], 3).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    with pytest.raises(ValueError, match="sequence_length"):
        sliding_windows([[1]], 0, 2)


# --------------------------------------------------------------------------- pipeline


def _train_sequences():
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(1, 30), size=n, replace=False) for n in (12, 9, 1, 20, 7)]
    return [s.astype(np.int32) for s in seqs]


def test_training_dataset_negatives_and_labels():
    seqs = _train_sequences()
    ds, steps = rec_training_dataset(seqs, 30, 4, 2, negatives=3, batch_size=4, seed=1, epoch=0)
    n = len(sliding_windows(seqs, 4, 2)[0])
    assert steps == -(-n // 4)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == steps
    seen = set()
    for x, y in batches:
        assert x["items"].shape[1] == 2 * 4 and y.shape == x["items"].shape
        for u, seq, items, labels in zip(x["user"], x["sequence"], x["items"], y, strict=True):
            own = set(seqs[u].tolist())
            targets, negatives = items[:2], items[2:]
            assert set(negatives.tolist()).isdisjoint(own)
            assert negatives.min() >= 1 and negatives.max() < 30
            expected = [IGNORE_LABEL if t == PAD_ITEM else 1.0 for t in targets] + [0.0] * 6
            assert labels.tolist() == expected
            seen.add((int(u), tuple(seq.tolist()), tuple(targets.tolist())))
    # one pass holds every window once
    users, inputs, targets = sliding_windows(seqs, 4, 2)
    windows = {
        (u, tuple(i), tuple(t))
        for u, i, t in zip(users.tolist(), inputs.tolist(), targets.tolist(), strict=True)
    }
    assert seen == windows and len(seen) == n
    # the user with 1 item has a window whose first target is padding
    assert any(lbl == IGNORE_LABEL for _, y in batches for lbl in y[:, 0])


def test_training_dataset_is_reproducible():
    seqs = _train_sequences()

    def passes(**kw):
        ds, _ = rec_training_dataset(seqs, 30, 4, 2, batch_size=8, seed=5, **kw)
        return [np.concatenate([x["items"] for x, _ in ds.as_numpy_iterator()]) for _ in range(2)]

    fixed_a, fixed_b = passes(epoch=3)
    np.testing.assert_array_equal(fixed_a, fixed_b)  # a fixed epoch repeats itself
    np.testing.assert_array_equal(fixed_a, passes(epoch=3)[0])
    assert not np.array_equal(fixed_a, passes(epoch=4)[0])
    first, second = passes(epoch=None)
    assert not np.array_equal(first, second)  # fresh negatives and order every pass
    again = passes(epoch=None)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])


def test_training_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_items"):
        rec_training_dataset([[1, 2, 40]], 30)
    with pytest.raises(ValueError, match="every item"):
        rec_training_dataset([[1, 2, 3]], 4)
    with pytest.raises(ValueError, match="negatives"):
        rec_training_dataset([[1, 2, 3]], 30, negatives=0)


# --------------------------------------------------------------------------- metrics


def test_ranking_metrics_hand_computed():
    scores = np.array(
        [
            [0.9, 0.1, 0.8, 0.3, 0.7, 0.5],
            [0.0, 0.2, 0.9, 0.4, 0.1, 0.3],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
        ]
    )
    targets = [[4, 1, 3, 4], [2, 5], [2], []]
    exclude = [[0, 2], [2], [], [1]]
    out = ranking_metrics(scores, targets, exclude, ks=(1, 5), per_user=True)
    # user 0: ranking 4, 5, 3, 1 -> targets at 1, 3, 4
    # user 1: ranking 3, 5, 1, 4, 0 (2 excluded, a target never found) -> 5 at 2
    # user 2: ties in id order 0, 1, 2, ... -> 2 at 3; user 3: no targets, skipped
    np.testing.assert_allclose(out["ap"], [(1 + 2 / 3 + 3 / 4) / 3, (1 / 2) / 2, 1 / 3])
    np.testing.assert_allclose(out["precision@1"], [1, 0, 0])
    np.testing.assert_allclose(out["recall@1"], [1 / 3, 0, 0])
    np.testing.assert_allclose(out["precision@5"], [3 / 4, 1 / 5, 1 / 5])  # 4 items left
    np.testing.assert_allclose(out["recall@5"], [1, 1 / 2, 1])
    assert out["users"].tolist() == [0, 1, 2]
    means = ranking_metrics(scores, targets, exclude, ks=(1, 5))
    assert means["users"] == 3
    assert means["map"] == pytest.approx(((1 + 2 / 3 + 3 / 4) / 3 + 1 / 4 + 1 / 3) / 3)
    assert means["recall@5"] == pytest.approx(2.5 / 3)


def _cosrec_reference(scores, targets, exclude, k):
    """Straight transcription of the definitions: filter the sorted list, loop."""
    aps, precisions, recalls = [], [], []
    for s, t, ex in zip(scores, targets, exclude, strict=True):
        t = set(int(i) for i in t)
        if not t:
            continue
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        ranking = [i for i in order if i not in set(ex)]
        hits, total = 0, 0.0
        for pos, item in enumerate(ranking):
            if item in t:
                hits += 1
                total += hits / (pos + 1)
        aps.append(total / len(t))
        top = ranking[:k]
        precisions.append(len(set(top) & t) / len(top))
        recalls.append(len(set(top) & t) / len(t))
    return np.mean(aps), np.mean(precisions), np.mean(recalls)


def test_ranking_metrics_match_a_reference_loop():
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=(40, 25)), 1)  # rounded: many ties
    targets = [rng.choice(25, size=rng.integers(0, 5)) for _ in range(40)]
    exclude = [rng.choice(25, size=rng.integers(0, 8), replace=False) for _ in range(40)]
    out = ranking_metrics(scores, targets, exclude, ks=(10,))
    ap, p, r = _cosrec_reference(scores, targets, exclude, 10)
    assert out["map"] == pytest.approx(ap, abs=1e-12)
    assert out["precision@10"] == pytest.approx(p, abs=1e-12)
    assert out["recall@10"] == pytest.approx(r, abs=1e-12)


def test_ranking_metrics_errors():
    with pytest.raises(ValueError, match="targets"):
        ranking_metrics(np.zeros((2, 3)), [[1]])
    with pytest.raises(ValueError, match="outside"):
        ranking_metrics(np.zeros((1, 3)), [[3]])
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(np.full((1, 3), np.nan), [[1]])


def test_sampled_binary_crossentropy_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 8)).astype(np.float32)
    labels = np.array(
        [[1, 1, 0, 0, 0, 0, 0, 0], [-1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]
    )
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = []
    for lab, prob in zip(labels, p, strict=True):
        expected.append(-np.log(prob[lab == 1]).mean() - np.log(1 - prob[lab == 0]).mean())
    loss = SampledBinaryCrossentropy()(labels.astype(np.float32), logits)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)


# --------------------------------------------------------------------------- builders


def test_parameter_counts_match_table_one():
    """MovieLens-1M: 6,040 users, 3,416 items + padding (Table I: 1.983M / 1.730M)."""
    cosrec, scosrec = build_cosrec(6040, 3417), build_scosrec(6040, 3417)
    assert trainable(cosrec) == 1_983_369
    assert round(trainable(cosrec), -3) == PAPER_COSREC_TRAINABLE_PARAMS["cosrec"]
    assert trainable(scosrec) == 1_731_209
    assert abs(trainable(scosrec) / PAPER_COSREC_TRAINABLE_PARAMS["scosrec"] - 1) < 0.002
    assert trainable(build_scosrec(6040, 3417, fused=False)) == 1_731_209


def _inputs(rng, users=7, items=20, batch=5, k=4):
    return {
        "user": rng.integers(0, users, batch).astype(np.int32),
        "sequence": rng.integers(0, items, (batch, 5)).astype(np.int32),
        "items": rng.integers(0, items, (batch, k)).astype(np.int32),
    }


def test_scosrec_feature_maps_are_symmetric_and_fused_equals_unfused():
    rng = np.random.default_rng(1)
    fused = build_scosrec(7, 20, **TINY)
    literal = build_scosrec(7, 20, fused=False, **TINY)
    by_name = {w.path: w for w in literal.weights}
    for w in fused.weights:
        by_name[w.path].assign(w)
    x = _inputs(rng)
    np.testing.assert_allclose(literal(x), fused(x), rtol=1e-5, atol=1e-6)
    maps = keras.Model(fused.inputs, [fused.get_layer(f"block{k}_relu1").output for k in (1, 2)])
    first, second = (np.asarray(z) for z in maps(x))
    # the fused generating layer's output is bitwise symmetric; after a full
    # (not triangular) preserving conv, symmetric to rounding
    np.testing.assert_array_equal(first, np.swapaxes(first, 1, 2))
    np.testing.assert_allclose(second, np.swapaxes(second, 1, 2), rtol=1e-5, atol=1e-6)
    plain = build_cosrec(7, 20, **TINY)  # the plain maps are not symmetric
    z = np.asarray(keras.Model(plain.inputs, plain.get_layer("block1_relu1").output)(x))
    assert np.abs(z - np.swapaxes(z, 1, 2)).max() > 1e-3


def test_item_scores_all_items_and_saving(tmp_path):
    rng = np.random.default_rng(2)
    model = build_scosrec(7, 20, **TINY)
    x = _inputs(rng)
    some = np.asarray(model(x))
    every = score_all_items(model, x["user"], x["sequence"])
    assert every.shape == (5, 20)
    np.testing.assert_allclose(some, np.take_along_axis(every, x["items"], 1), rtol=1e-5, atol=1e-6)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(x), some, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        all_items_model(loaded).predict({"user": x["user"], "sequence": x["sequence"]}, verbose=0),
        every,
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="not a CosRec"):
        all_items_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_builder_argument_errors():
    with pytest.raises(ValueError, match="blocks"):
        build_cosrec(3, 10, blocks=(8, 8, 8))
    with pytest.raises(TypeError, match="Unknown"):
        build_cosrec(3, 10, fused=True)
    with pytest.raises(ValueError, match="num_items"):
        build_scosrec(3, 1)


def test_regularization_is_cosrec_weight_decay():
    """L2 l2/2 * sum(w^2) on every weight: its gradient is CosRec's l2 * w."""
    model = build_cosrec(4, 10, l2=0.1, **TINY)
    total = sum(float(tf.reduce_sum(tf.square(w))) for w in model.trainable_weights)
    assert float(sum(model.losses)) == pytest.approx(0.05 * total, rel=1e-4)
    assert len(model.losses) == len(model.trainable_weights)


def test_training_learns_and_evaluation_matches_numpy(tmp_path):
    """Segments of one cycle 1 -> 2 -> ... -> 30 -> 1: learnt within a few epochs."""
    seqs = [np.roll(np.arange(1, 31), -u)[: 12 + u % 3] for u in range(30)]
    inter = read_interactions_from(seqs)
    split = split_by_time(inter, (0.6, 0.2, 0.2))
    keras.utils.set_random_seed(0)
    model = build_scosrec(split.num_users, split.num_items, dropout=0.0, **TINY)
    model.compile(keras.optimizers.Adam(0.02), SampledBinaryCrossentropy())
    ds, _ = rec_training_dataset(split.train, split.num_items, 5, 3, batch_size=16, seed=0)
    before = evaluate_recommender(model, split, "test")
    history = model.fit(ds, epochs=40, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    after = evaluate_recommender(model, split, "test")
    assert before["map"] < 0.4 and after["map"] > 0.5  # about 0.30 -> 0.63
    # the same figures from the scores by hand
    history_items = split.history("test")
    scores = score_all_items(model, np.arange(30), last_items(history_items, 5))
    expected = ranking_metrics(
        scores, split.test, [np.append(h, PAD_ITEM) for h in history_items], ks=(1, 5, 10)
    )
    assert after == pytest.approx(expected)


def _one_batch():
    ds, _ = rec_training_dataset(_train_sequences(), 30, 5, 3, batch_size=8, seed=0, epoch=0)
    return next(iter(ds.as_numpy_iterator()))


def _step(model, batch, **compile_kwargs):
    model.compile(keras.optimizers.SGD(0.1), SampledBinaryCrossentropy(), **compile_kwargs)
    x, y = batch
    model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_train_step_under_xla_matches_plain():
    batch = _one_batch()
    keras.utils.set_random_seed(3)
    reference = build_scosrec(5, 30, dropout=0.0, **TINY)
    initial = reference.get_weights()
    expected = _step(reference, batch)
    xla = build_scosrec(5, 30, dropout=0.0, **TINY)
    xla.set_weights(initial)
    for got, want in zip(_step(xla, batch, jit_compile=True), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


MIRRORED = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, sys
sys.path.insert(0, sys.argv[1])
import test_recsys as t
batch = t._one_batch()
keras.utils.set_random_seed(3)
reference = t.build_scosrec(5, 30, dropout=0.0, **t.TINY)
initial = reference.get_weights()
expected = t._step(reference, batch)
devices = [d.name for d in tf.config.list_logical_devices("CPU")]
with tf.distribute.MirroredStrategy(devices[:2]).scope():
    mirrored = t.build_scosrec(5, 30, dropout=0.0, synchronized_batch_norm=True, **t.TINY)
    mirrored.set_weights(initial)
    got = t._step(mirrored, batch)
moved = sum(not np.allclose(a, b) for a, b in zip(initial, got))
diff = max(float(np.max(np.abs(g - w) / (1e-6 + 1e-4 * np.abs(w)))) for g, w in zip(got, expected))
print(f"replicas {len(devices)} moved {moved} of {len(got)} relative-diff {diff:.3f}")
"""


def test_train_step_under_mirrored_strategy_matches_plain(tmp_path):
    """Two logical CPUs, synchronized batch norm: the same step as one device.

    In a fresh process: run in the test process, this model's mirrored
    ``fit`` left collective state behind that made the MirroredStrategy tests
    after it fail ("Shape mismatch in the collective instance",
    tests/test_training.py).
    """
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, here],
        capture_output=True,
        text=True,
        timeout=300,
        # not the repository root: its keras_symconv/ folder would shadow
        # the installed package (which maps models/ to keras_symconv.models)
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    replicas, moved, total, diff = (float(v) for v in re.findall(r"[0-9.]+", line))
    assert replicas == 2 and moved > total / 2
    assert diff <= 1.0  # |got - want| <= 1e-6 + 1e-4 |want| everywhere


def test_mixed_precision():
    batch = _one_batch()
    keras.utils.set_random_seed(4)
    full = build_scosrec(5, 30, **TINY)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = build_scosrec(5, 30, **TINY)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(full.get_weights())
    assert all(w.dtype == "float32" for w in mixed.weights)
    x = batch[0]
    out = mixed(x)
    assert out.dtype == "float16"
    np.testing.assert_allclose(np.asarray(out, np.float32), full(x), rtol=2e-2, atol=2e-2)
    weights = _step(mixed, batch)
    assert all(np.all(np.isfinite(w)) for w in weights)
    assert not np.allclose(weights[0], full.get_weights()[0])
