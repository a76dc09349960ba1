"""Contact examples, pipelines, top-L precision, and a short fit of the contact SCNN."""

import os

import numpy as np
import pytest
from keras_symconv.models import build_contact_scnn

import keras_symconv as ks
from keras_symconv.data.contact import (
    contact_eval_dataset,
    contact_example,
    contact_training_dataset,
)
from keras_symconv.data.protein import ProteinChain, read_protein_json
from keras_symconv.losses import IGNORE_LABEL, PairBinaryCrossentropy
from keras_symconv.metrics import contact_precision

SHARED_PROTEIN = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "protein")


def random_chain(rng, length, name="c"):
    """A random walk of 3.8 A steps as C-alpha trace (other atoms offset)."""
    steps = rng.normal(size=(length, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
    ca = np.cumsum(steps, axis=0)
    coords = np.stack([ca - 1.0, ca, ca + 1.0, ca + 2.0], axis=1)
    seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=length))
    return ProteinChain(name, seq, coords)


def test_example_masks_missing_residues():
    rng = np.random.default_rng(0)
    chain = random_chain(rng, 30)
    coords = chain.coords.copy()
    coords[7] = np.nan
    example = contact_example(ProteinChain("m", chain.sequence, coords))
    y = example.labels()[..., 0]
    assert np.all(y[7] == IGNORE_LABEL) and np.all(y[:, 7] == IGNORE_LABEL)
    assert set(np.unique(np.delete(np.delete(y, 7, 0), 7, 1))) <= {0.0, 1.0}
    assert example.sequence_features.shape == (30, 25) and example.pair_features.shape == (
        30,
        30,
        3,
    )


def test_training_windows_and_eval():
    rng = np.random.default_rng(1)
    examples = [contact_example(random_chain(rng, n, f"c{n}")) for n in (40, 55, 120, 33)]
    ds = contact_training_dataset(examples, 2, max_length=100, seed=0, return_lengths=True)
    seen = 0
    for (seq, pair), y, lengths in ds:
        w = int(lengths[0])
        assert seq.shape[1] == pair.shape[1] == y.shape[1] == w <= 100
        assert np.all(lengths.numpy() == w)
        seen += len(lengths)
    assert seen == 4
    evaluated = list(contact_eval_dataset(examples))
    assert [y.shape[1] for _, y in evaluated] == [40, 55, 120, 33]
    (seq, pair), y = evaluated[2]
    np.testing.assert_array_equal(y.numpy()[0], examples[2].labels())


def test_contact_precision_hand_computed():
    length = 30
    contacts = np.zeros((length, length))
    prob = np.zeros((length, length))
    # Long range (|i-j| >= 24): 3 true contacts; top-L/5 = 6 predictions.
    for i, j in [(0, 24), (1, 26), (2, 29)]:
        contacts[i, j] = contacts[j, i] = 1
    for k, (i, j) in enumerate([(0, 24), (3, 28), (1, 26), (4, 29), (5, 29), (0, 27)]):
        prob[i, j] = 0.9 - 0.01 * k
    result = contact_precision(contacts, prob, fractions=(5, 15))
    assert result["long_L/5"] == pytest.approx(2 / 6)
    assert result["long_L/15"] == pytest.approx(1 / 2)  # top 2: (0, 24) yes, (3, 28) no
    mask = np.ones(length)
    mask[3] = 0  # (3, 28) leaves the ranking
    assert contact_precision(contacts, prob, mask, fractions=(15,))["long_L/15"] == 1.0
    assert np.isnan(contact_precision(np.zeros((10, 10)), np.zeros((10, 10)))["long_L"])


def test_contact_scnn_fits_and_stays_symmetric():
    rng = np.random.default_rng(2)
    examples = [contact_example(random_chain(rng, n, f"c{n}")) for n in (30, 36, 42, 48)]
    model = build_contact_scnn(
        lstm_units=4, dense_units=3, first_filters=6, blocks=(((5, 4), (3, 2)),),
        final_blocks=(((3, 4),),),
    )  # fmt: skip
    model.compile(
        optimizer="adam", loss=PairBinaryCrossentropy(), metrics=[ks.metrics.PairMetric()]
    )
    history = model.fit(
        contact_training_dataset(examples, 2, 32, seed=0), epochs=2, shuffle=False, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    (seq, pair), _ = next(iter(contact_eval_dataset(examples)))
    ks.check_symmetric(model.predict([seq, pair], verbose=0), atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not os.path.isdir(SHARED_PROTEIN), reason="../shared/data/protein is absent")
def test_examples_from_shared_json_have_contacts_and_masks():
    chains = read_protein_json(os.path.join(SHARED_PROTEIN, "cath.json"))
    with_missing = [c for c in chains if np.isnan(c.coords[:, 1]).any()]
    example = contact_example(with_missing[0])
    assert (example.mask == 0).any()
    assert example.contacts[example.mask == 0].sum() == 0
    # Sequence neighbours (C-alpha 3.8 A apart) are always in contact.
    both = (example.mask[1:] > 0) & (example.mask[:-1] > 0)
    assert both.sum() > 0 and np.all(np.diag(example.contacts, 1)[both] == 1)
    assert np.all(example.labels()[example.mask == 0] == IGNORE_LABEL)


@pytest.mark.skipif(not os.path.isdir(SHARED_PROTEIN), reason="../shared/data/protein is absent")
def test_tfds_protein_builder(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_symconv.data import tfds_protein

    builder = tfds.builder("protein_chains", data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=SHARED_PROTEIN)
    )
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sizes == {"ts50": 50, "cath": 157, "pdb": 40}
    chains = {c.name: c for c in read_protein_json(os.path.join(SHARED_PROTEIN, "ts50.json"))}
    for example in builder.as_dataset(split="ts50").take(2):
        chain = chains[example["name"].numpy().decode()]
        reference = contact_example(chain)
        (seq, pair), y = tfds_protein.to_model_inputs(example)
        np.testing.assert_allclose(seq.numpy(), reference.sequence_features)
        np.testing.assert_allclose(pair.numpy(), reference.pair_features, atol=1e-6)
        np.testing.assert_array_equal(y.numpy(), reference.labels())
