"""tf.data pipelines and the tensorflow-datasets builder for RNA structures."""

import os

import numpy as np
import pytest

from keras_symconv import data
from keras_symconv.data.pipeline import encode_structure, rna_eval_dataset, rna_training_dataset
from keras_symconv.losses import IGNORE_LABEL

SHARED_RNA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "rna")


def _find_window(structures, x, y):
    """The (structure, offset) whose window is exactly (x, y); asserts one exists."""
    w = len(x)
    for s in structures:
        oh = s.one_hot()
        for off in range(len(s) - w + 1):
            if np.array_equal(oh[off : off + w], x):
                if np.array_equal(s.contact_map()[off : off + w, off : off + w], y[..., 0]):
                    return s, off
    raise AssertionError("batch element is not a window of any structure")


def test_paper_crops_one_window_per_batch():
    structures = data.synthetic_rna_dataset(10, 30, 60, seed=1)
    ds = rna_training_dataset(structures, batch_size=4, max_length=40, seed=3, return_lengths=True)
    assert ds.cardinality().numpy() == 3
    seen = []
    for x, y, lengths in ds:
        x, y, lengths = x.numpy(), y.numpy(), lengths.numpy()
        assert x.shape[1] == y.shape[1] == y.shape[2] <= 40
        assert np.all(lengths == x.shape[1])
        for k in range(len(x)):
            s, _ = _find_window(structures, x[k], y[k])
            seen.append(s.name)
        # The window is bounded by the shortest sequence of the batch.
        assert x.shape[1] == min(40, min(len(s) for s in structures if s.name in seen[-len(x) :]))
    assert sorted(seen) == sorted(s.name for s in structures)  # each once per epoch


def test_seeded_and_epochs_differ():
    structures = data.synthetic_rna_dataset(8, 30, 60, seed=2)

    def epochs(seed):
        ds = rna_training_dataset(structures, 3, 25, seed=seed)
        return [[x.numpy() for x, _ in ds] for _ in range(2)]

    a, b = epochs(5), epochs(5)
    for ea, eb in zip(a, b, strict=True):
        for xa, xb in zip(ea, eb, strict=True):
            np.testing.assert_array_equal(xa, xb)
    assert not all(np.array_equal(p, q) for p, q in zip(a[0], a[1], strict=True))


def test_pad_mode_marks_padding():
    structures = data.synthetic_rna_dataset(5, 20, 50, seed=4)
    ds = rna_training_dataset(
        structures, 5, max_length=45, crop="pad", shuffle=False, return_lengths=True
    )
    ((x, y, lengths),) = list(ds)
    x, y, lengths = x.numpy(), y.numpy(), lengths.numpy()
    assert lengths.tolist() == [min(len(s), 45) for s in structures]
    for k, n in enumerate(lengths):
        _find_window([structures[k]], x[k, :n], y[k, :n, :n])
        assert np.all(x[k, n:] == 0)
        assert np.all(y[k, n:] == IGNORE_LABEL) and np.all(y[k, :, n:] == IGNORE_LABEL)
    with pytest.raises(ValueError, match="crop='none'"):
        rna_training_dataset(structures, 2, crop="none")
    with pytest.raises(ValueError, match="batch_size=0"):
        rna_training_dataset(structures, 0)


def test_eval_dataset_whole_sequences_in_order():
    structures = data.synthetic_rna_dataset(3, 20, 40, seed=5)
    out = list(rna_eval_dataset(structures))
    assert len(out) == 3
    for (x, y), s in zip(out, structures, strict=True):
        ex, ey = encode_structure(s)
        np.testing.assert_array_equal(x.numpy()[0], ex)
        np.testing.assert_array_equal(y.numpy()[0], ey)


@pytest.mark.skipif(not os.path.isdir(SHARED_RNA), reason="../shared/data/rna is absent")
def test_tfds_builder_on_shared_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_symconv.data import tfds_rna

    config = tfds.download.DownloadConfig(manual_dir=SHARED_RNA)
    split16s = tfds.builder("rna_structures/strand16s", data_dir=str(tmp_path))
    split16s.download_and_prepare(download_config=config)
    sizes = {k: v.num_examples for k, v in split16s.info.splits.items()}
    assert sizes == {"train": 550, "valid": 28, "test": 35}
    reference = {
        r.name: r for r in data.read_strand16s(os.path.join(SHARED_RNA, "strand16s", "test.txt"))
    }
    test = split16s.as_dataset(split="test")
    for example in test.take(3):
        record = reference[example["name"].numpy().decode()]
        x, y = tfds_rna.to_model_inputs(example)
        ex, ey = encode_structure(record)
        np.testing.assert_array_equal(x.numpy(), ex)
        np.testing.assert_array_equal(y.numpy(), ey)
        assert example["family"].numpy().decode() == record.family

    folder = tfds.builder("rna_structures/folder", data_dir=str(tmp_path))
    folder.download_and_prepare(download_config=config)
    assert folder.info.splits["train"].num_examples == 35  # the .ct files, not the .txt splits
    families = {e["family"].numpy().decode() for e in folder.as_dataset(split="train")}
    assert families == {
        "ct/16s_extra",
        "ct/16s_long",
        "ct/16s_med",
        "ct/16s_small",
        "ct/5S",
        "ct/intron",
        "ct/rnasep",
    }
    half = folder.as_dataset(split="train[:50%]")
    assert sum(1 for _ in half) in (17, 18)


def test_every_pipeline_turns_autotuning_off_and_shards_by_element():
    # Autotuning off: with it on, deleting an iterator (fit does so at every
    # epoch's end) waits for the autotuner's doubling sleep.
    import tensorflow as tf

    from keras_symconv.data.contact import (
        contact_eval_dataset,
        contact_example,
        contact_training_dataset,
    )
    from keras_symconv.data.pipeline import pipeline_options
    from keras_symconv.data.protein import ProteinChain

    structures = data.synthetic_rna_dataset(4, 20, 30, seed=0)
    rng = np.random.default_rng(0)
    chain = ProteinChain("c", "ACDEFGHIKL" * 3, rng.normal(size=(30, 4, 3)) * 5)
    examples = [contact_example(chain)]
    seqs = [np.arange(1, 9), np.arange(3, 12)]
    pipelines = {
        "rna_training_dataset": rna_training_dataset(structures, 2, max_length=16),
        "rna_eval_dataset": rna_eval_dataset(structures),
        "contact_training_dataset": contact_training_dataset(examples, 1),
        "contact_eval_dataset": contact_eval_dataset(examples),
        "rec_training_dataset": data.rec_training_dataset(seqs, 12, 4, 2, batch_size=2)[0],
        "pipeline_options": tf.data.Dataset.range(3).with_options(pipeline_options()),
    }
    for name, ds in pipelines.items():
        options = ds.options()
        assert options.autotune.enabled is False, name
        assert (
            options.experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA
        ), name
