"""The shipped presets: files, loading, builders' ``weights=``, the tool, stored figures."""

import os

import numpy as np
import pytest
from keras_symconv.models import build_rna_cnn, build_rna_scnn

import keras_symconv as ks
from keras_symconv import data
from keras_symconv.cli import main
from keras_symconv.metrics import pair_metrics
from keras_symconv.pretrained import (
    DEFAULT_RNA_PRESET,
    list_presets,
    load_preset,
    preset_metadata,
    preset_path,
    resolve_weights,
)
from keras_symconv.training import read_decoding

PRESETS = ("strand16s-cnn", "strand16s-scnn")
VALID = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "rna", "strand16s", "valid.txt"
)


def test_presets_are_shipped_small_and_described():
    assert set(PRESETS) <= set(list_presets()) and DEFAULT_RNA_PRESET in PRESETS
    for name in PRESETS:
        path = preset_path(name)
        assert os.path.getsize(path) < 5e6, f"{name}: {os.path.getsize(path)} bytes"
        meta = preset_metadata(name)
        assert meta["name"] == name and meta["model"] == name.split("-")[1]
        assert read_decoding(path)["threshold"] == meta["threshold"]
        assert 0 < meta["threshold"] < 1
        for part in ("valid", "test"):
            assert 0 <= meta[part]["accuracy"] <= 1
        assert meta["training"]["steps"] > 0 and meta["valid_check"]


def test_presets_load_safely_and_the_scnn_is_symmetric():
    x = data.one_hot("GGGAAACCCAUAUAGCGCAAAAGCGCUUUAGCC")[None]
    scnn = load_preset("strand16s-scnn")  # safe_mode=True
    out = scnn(x).numpy()
    assert out.shape == (1, 33, 33, 1)
    assert ks.asymmetry(out) == 0.0  # bitwise symmetric
    # The builders load the same weights, into any layout.
    for layout in ("upper", "full"):
        model = build_rna_scnn(weights="strand16s", layout=layout)
        np.testing.assert_allclose(model(x).numpy(), out, rtol=1e-5, atol=1e-6)
    cnn = load_preset("strand16s-cnn")
    np.testing.assert_allclose(
        build_rna_cnn(weights="strand16s")(x).numpy(), cnn(x).numpy(), rtol=1e-5, atol=1e-6
    )


def test_weights_argument_errors():
    with pytest.raises(ValueError, match="preset 'strand16s-scnn' is not an RNA CNN"):
        build_rna_cnn(weights="strand16s-scnn")
    with pytest.raises(ValueError, match=r"Received: weights='imagenet'"):
        resolve_weights("imagenet", "scnn")
    with pytest.raises(ValueError, match="does not fit this model"):
        build_rna_scnn(weights="strand16s", first_filters=8)
    with pytest.raises(ValueError, match="Unknown preset 'nope'. Available presets: "):
        preset_path("nope")


@pytest.mark.skipif(not os.path.exists(VALID), reason="../shared/data (the 16S split) is absent")
@pytest.mark.parametrize("name", PRESETS)
def test_preset_reproduces_its_stored_validation_figures(name):
    meta = preset_metadata(name)
    valid = {s.name: s for s in data.read_structures([VALID])}
    model = load_preset(name)
    for seq_name, stored in meta["valid_check"].items():
        item = valid[seq_name]
        prob = model.predict_on_batch(item.one_hot()[None])[0, :, :, 0]
        np.fill_diagonal(prob, 0.0)
        got = pair_metrics(item.contact_map(), prob, meta["threshold"])["per_sequence"][0]
        np.testing.assert_allclose(got, stored, atol=0.01, err_msg=seq_name)


def test_tool_lists_presets_and_predicts_with_the_default(tmp_path, capsys):
    assert main(["rna", "models"]) == 0
    text = capsys.readouterr().out
    for name in PRESETS:
        assert f"| {name} |" in text
    fasta = tmp_path / "in.fa"
    fasta.write_text(">a\nGGGGAAACCCCAUAUAGGCGCAAAAGCGCC\n>b\nACGUACGUAAUUGCA\n")
    out = tmp_path / "pred"
    assert main(["rna", "predict", str(fasta), "--out", str(out)]) == 0
    threshold = preset_metadata(DEFAULT_RNA_PRESET)["threshold"]
    text = capsys.readouterr().out
    assert (
        f"model {DEFAULT_RNA_PRESET}; decoding threshold {threshold:g} "
        "(stored in the model (validation))" in text
    )
    for stem in ("a", "b"):
        for suffix in (".ct", ".bpseq", ".dbn", ".png"):
            assert (out / f"{stem}{suffix}").stat().st_size > 0
    # A preset named explicitly, and a model without inputs.
    assert main(["rna", "predict", "strand16s-cnn", str(fasta), "--out", str(out)]) == 0
    assert "model strand16s-cnn;" in capsys.readouterr().out
    assert main(["rna", "predict", "strand16s-cnn", "--out", str(out)]) == 2
    assert "a model, but no input files follow it" in capsys.readouterr().err
