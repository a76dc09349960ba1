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


def test_preset_predicts_the_same_in_tiles(tmp_path, capsys):
    from keras_symconv.data import RNAStructure
    from keras_symconv.inference import load_model, make_predictor

    rng = np.random.default_rng(5)
    sequence = "".join(rng.choice(list("ACGU"), size=150))
    item = RNAStructure.from_pairs("r", sequence, [])
    model = load_model(DEFAULT_RNA_PRESET)
    lines = []
    tiled = make_predictor(model, tile="always", tile_size=32, log=lines.append)(item)
    whole = make_predictor(model, tile="never")(item)
    assert lines == [
        "r: 150 long, predicted in tiles of 32 (the whole map would take about 10 MiB)"
    ]
    assert whole.max() > 0.5 and np.all(np.diag(tiled) == 0)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    fasta = tmp_path / "in.fa"
    fasta.write_text(f">r\n{sequence}\n")
    for mode in ("never", "always"):
        args = ["rna", "predict", str(fasta), "--out", str(tmp_path / mode), "--tile", mode]
        assert main(args + ["--tile-size", "32"]) == 0
    assert "r: 150 long, predicted in tiles of 32" in capsys.readouterr().err
    for suffix in (".ct", ".bpseq", ".dbn"):
        assert (tmp_path / "never" / f"r{suffix}").read_text() == (
            tmp_path / "always" / f"r{suffix}"
        ).read_text()


def test_long_maps_are_drawn_downsampled(tmp_path):
    from keras_symconv.plotting import downsample, heatmap

    prob = np.random.default_rng(0).random((2503, 2503)).astype(np.float32)
    small, factor = downsample(prob, max_side=1000)
    assert factor == 3 and small.shape == (835, 835)
    assert small[4, 7] == prob[12:15, 21:24].max() and small[-1, -1] == prob[2502, 2502]
    assert downsample(prob[:900, :900])[1] == 1
    heatmap(tmp_path / "big.png", [prob], ["p"])
    assert (tmp_path / "big.png").read_bytes()[:4] == b"\x89PNG"
