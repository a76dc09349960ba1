"""The reproduction harness: an interrupted run resumes to the same result.

Runs ``benchmarks/reproduce_rna.py`` on tiny synthetic RNAs written in the
16S split's 5-line format (no real data needed).
"""

import importlib
import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.join(HERE, "..", "benchmarks")


def _benchmark(name):
    """Import the script ``benchmarks/<name>.py``."""
    sys.path.insert(0, BENCHMARKS)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(BENCHMARKS)


@pytest.fixture(scope="module")
def reproduce_rna():
    sys.path.insert(0, BENCHMARKS)
    try:
        yield importlib.import_module("reproduce_rna")
    finally:
        sys.path.remove(BENCHMARKS)


def _write_split(folder):
    from keras_symconv.data import synthetic_rna_dataset

    records = synthetic_rna_dataset(12, 24, 32, seed=3)
    parts = {"train": records[:6], "valid": records[6:9], "test": records[9:]}
    for part, items in parts.items():
        with open(folder / f"{part}.txt", "w") as handle:
            for k, s in enumerate(items):
                codes = " ".join(str("ACGU".index(b)) for b in s.sequence)
                partners = " ".join(str(int(p) + 1) for p in s.partners)
                flags = " ".join(str(int(p >= 0)) for p in s.partners)
                handle.write(f"set/rnasep/{part}{k}.ct\n{codes}\n{partners}\n{flags}\n\n")


def _argv(data, work, epochs, extra=()):
    return [
        "--data", str(data), "--work", str(work), "--out", str(work / "report"),
        "--models", "scnn", "--epochs", str(epochs), "--crop", "16", "--batch-size", "3",
        "--train-eval", "2", "--no-vienna", *extra,
    ]  # fmt: skip


def _final_weights(work):
    import keras

    import keras_symconv  # noqa: F401

    model = keras.saving.load_model(str(work / "seed0" / "scnn" / "last.keras"))
    return [np.asarray(w) for w in model.weights], int(model.optimizer.iterations.numpy())


def test_resumed_run_equals_uninterrupted_run(tmp_path, reproduce_rna):
    data = tmp_path / "data"
    data.mkdir()
    _write_split(data)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert reproduce_rna.main(_argv(data, whole, 2)) == 0
    # Interrupted after the first epoch (--stop-after 0 stops before the
    # next epoch starts), then started again with the same folder.
    assert reproduce_rna.main(_argv(data, parts, 1)) == 0
    assert reproduce_rna.main(_argv(data, parts, 2, ("--stop-after", "0"))) == 3
    state = json.loads((parts / "seed0" / "scnn" / "state.json").read_text())
    assert state["epochs_done"] == 1
    assert reproduce_rna.main(_argv(data, parts, 2)) == 0

    (w_whole, it_whole), (w_parts, it_parts) = _final_weights(whole), _final_weights(parts)
    assert it_whole == it_parts == 2 * 2  # 6 sequences / batch 3, two epochs
    for a, b in zip(w_whole, w_parts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    result = json.loads((parts / "seed0" / "scnn" / "result.json").read_text())
    history = json.loads((parts / "seed0" / "scnn" / "state.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    # The model scored at the end is the best validation epoch, at the
    # threshold chosen on validation.
    best = max(history, key=lambda h: h["valid"]["accuracy"])
    assert result["best_epoch"] == best["epoch"]
    assert result["threshold"] == best["valid"]["threshold"]
    assert result["valid"]["accuracy"] == pytest.approx(best["valid"]["accuracy"])
    assert len(result["test"]["per_sequence"]) == 3
    assert result["trainable_params"] == 239_318
    table = (parts / "report" / "tables.md").read_text()
    assert "| SCNN | 0 | 239,318 | 2 (" in table

    # The finished run and its log are kept in the report folder (in the
    # repository), so a report written where the work folder is gone, or
    # holds other seeds, still has the run; its log lines are kept once.
    kept = parts / "report" / "runs"
    assert json.loads((kept / "seed0" / "scnn" / "result.json").read_text()) == result
    log = (parts / "train.log").read_text().splitlines()
    assert (kept / "train.log").read_text().splitlines() == log
    assert reproduce_rna.main([*_argv(data, parts, 2), "--report"]) == 0
    assert (kept / "train.log").read_text().splitlines() == log
    (parts / "report" / "tables.md").unlink()
    elsewhere = [*_argv(data, tmp_path / "elsewhere", 2), "--out", str(parts / "report")]
    assert reproduce_rna.main([*elsewhere, "--report"]) == 0
    assert "| SCNN | 0 | 239,318 | 2 (" in (parts / "report" / "tables.md").read_text()


PROTEIN = os.path.join(HERE, "..", "..", "shared", "data", "protein")


@pytest.mark.skipif(
    not os.path.exists(os.path.join(PROTEIN, "ts50.json")),
    reason="../shared/data/protein (CATH and TS50 chains) is not present",
)
def test_contact_reproduction_on_a_few_real_chains(tmp_path):
    reproduce_contact = _benchmark("reproduce_contact")
    from keras_symconv.data.protein import read_protein_json

    work = tmp_path / "work"
    argv = [
        "--protein", PROTEIN, "--work", str(work), "--out", str(tmp_path / "report"),
        "--experiments", "ts50-25-100", "--models", "scnn", "--limit", "8", "--epochs", "1",
        "--crop", "24", "--batch-size", "4",
    ]  # fmt: skip
    assert reproduce_contact.main(argv) == 0
    result = json.loads((work / "ts50-25-100" / "seed0" / "scnn" / "result.json").read_text())
    ts50 = [c.name for c in read_protein_json(os.path.join(PROTEIN, "ts50.json"))]
    short = [c.name for c in read_protein_json(os.path.join(PROTEIN, "ts50.json")) if len(c) <= 100]
    assert result["test_names"] == short[:8] and set(short) <= set(ts50)
    assert result["sizes"] == {"train": 7, "valid": 1, "test": 8}
    assert result["trainable_params"] == 1_364_788
    assert 0.0 <= result["test"]["long_L/5"] <= 1.0
    table = (tmp_path / "report" / "tables.md").read_text()
    assert "| ts50-25-100 | SCNN | 0 | valid long_L/5 | 1 / 1 | 1,364,788 (1,326,000) |" in table
    assert result["select"] == "long_L/5"
    # the epoch lines name the experiment (several can share one log)
    log = (work / "train.log").read_text()
    assert "] ts50-25-100 seed 0 scnn     epoch 1: " in log, log
    # a run is never resumed under another epoch criterion
    with pytest.raises(SystemExit, match="trained with --select long_L/5"):
        reproduce_contact.main([*argv, "--select", "accuracy"])


@pytest.mark.skipif(
    not os.path.exists(os.path.join(PROTEIN, "ts50.json")),
    reason="../shared/data/protein (CATH and TS50 chains) is not present",
)
def test_contact_figure_is_drawn_from_the_lowest_kept_seed(tmp_path, monkeypatch, capsys):
    """Not from the lowest seed of the command that wrote the report last."""
    import keras_symconv.plotting

    reproduce_contact = _benchmark("reproduce_contact")
    from keras_symconv.data.protein import read_protein_json

    chain = min(read_protein_json(os.path.join(PROTEIN, "ts50.json")), key=len)
    work, out = tmp_path / "work", tmp_path / "report"
    maps = {}
    for seed in (0, 1):
        for k, kind in enumerate(("cnn", "scnn")):
            folder = work / "ts50-25-100" / f"seed{seed}" / kind
            folder.mkdir(parents=True)
            result = {
                "experiment": "ts50-25-100", "kind": kind, "seed": seed, "settings": {},
                "figure_chain": chain.name, "trainable_params": 1, "seconds_per_epoch": 1.0,
                "test": {key: 0.5 for key in ("ppv", "sensitivity", "accuracy",
                                              *reproduce_contact.PRECISION_KEYS)},
            }  # fmt: skip
            (folder / "result.json").write_text(json.dumps(result))
            maps[seed, kind] = np.full((len(chain), len(chain)), 0.1 + 0.2 * seed + 0.4 * k)
            np.save(folder / "figure_map.npy", maps[seed, kind].astype(np.float32))
    drawn = []
    monkeypatch.setattr(keras_symconv.plotting, "heatmap", lambda path, m, t, **kw: drawn.append(m))
    argv = ["--protein", PROTEIN, "--work", str(work), "--out", str(out), "--report"]
    assert reproduce_contact.main([*argv, "--seeds", "1"]) == 0
    assert len(drawn) == 1 and len(drawn[0]) == 3
    np.testing.assert_array_equal(drawn[0][1], maps[0, "cnn"].astype(np.float32))
    np.testing.assert_array_equal(drawn[0][2], maps[0, "scnn"].astype(np.float32))
    # Seed 0 is kept in the report folder but its maps are gone from the
    # work folder (trained on another machine): the figure is left alone
    # rather than redrawn from seed 1.
    (work / "ts50-25-100" / "seed0" / "cnn" / "figure_map.npy").unlink()
    assert reproduce_contact.main([*argv, "--seeds", "1"]) == 0
    assert len(drawn) == 1
    assert "heatmaps.png left as it is" in capsys.readouterr().out


def test_output_bias_starts_every_model_at_the_prior():
    from keras_symconv.models import build_contact_cnn, build_rna_cnn, build_rna_scnn

    for build in (build_rna_scnn, build_rna_cnn, build_contact_cnn):
        assert float(build(output_bias=-2.5).get_layer("final_bn").beta.numpy()[0]) == -2.5
        assert float(build().get_layer("final_bn").beta.numpy()[0]) == 0.0
    plain = build_rna_scnn(output_bias=-2.5, batch_norm=False).get_layer("final")
    assert float(plain.bias.numpy()[0]) == -2.5
    # in inference mode (moving mean 0, variance 1) the output is about the prior
    x = np.random.default_rng(0).random((2, 30, 5)).astype(np.float32)
    p = build_rna_scnn(output_bias=-4.0)(x, training=False).numpy()
    assert 0.005 < float(np.median(p)) < 0.06  # sigmoid(-4) = 0.018


def test_scosrec_report_pools_seeds_trained_in_different_work_folders(tmp_path):
    """Seeds run on different machines (work folders) are reported together."""
    reproduce_scosrec = _benchmark("reproduce_scosrec")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("validation.txt", "test.txt"):
        with open(data / name, "w") as handle:
            for user in range(6):
                for item in rng.integers(0, 12, size=15):
                    handle.write(f"u{user} i{item}\n")
    out = tmp_path / "report"

    def argv(work, *extra):
        return [
            "--data", str(data), "--work", str(tmp_path / work), "--out", str(out),
            "--epochs", "1", "--batch-size", "64", *extra,
        ]  # fmt: skip

    assert reproduce_scosrec.main(argv("first", "--seeds", "0")) == 0
    assert reproduce_scosrec.main(argv("second", "--seeds", "1")) == 0
    # a report from a third, empty work folder still has both seeds
    assert reproduce_scosrec.main(argv("third", "--seeds", "0", "1", "--report")) == 0
    table = (out / "tables.md").read_text()
    kept = {
        (seed, kind): json.loads((out / "runs" / f"seed{seed}" / kind / "result.json").read_text())
        for seed in (0, 1)
        for kind in ("cosrec", "scosrec")
    }
    for kind, title in (("cosrec", "CosRec"), ("scosrec", "SCosRec")):
        maps = [kept[seed, kind]["test"]["map"] for seed in (0, 1)]
        row = next(line for line in table.splitlines() if line.startswith(f"| {title} | "))
        assert f"{np.mean(maps):.4f} ± {np.std(maps, ddof=1):.4f}" in row, row
    assert "seeds 0, 1" in table
    log = (out / "runs" / "train.log").read_text()
    assert log.count("] start: ") == 2
    header = next(line for line in table.splitlines() if line.startswith("Runs started with: "))
    assert "--work " + str(tmp_path / "first") in header
    assert "--work " + str(tmp_path / "second") in header
    assert "Report: `python benchmarks/reproduce_scosrec.py --data" in table
    # runs trained otherwise are not pooled silently
    assert reproduce_scosrec.main(argv("fourth", "--seeds", "2", "--lr", "0.01")) == 0
    with pytest.raises(SystemExit, match="different settings"):
        reproduce_scosrec.main(argv("third", "--seeds", "0", "2", "--report"))


def _long_argv(data, out, extra=()):
    return [
        "--data", str(data), "--out", str(out), "--models", "scnn", "--batch-size", "2",
        "--schedule", "16x1,20", "--validate-every", "1", "--max-epochs", "2",
        "--policy", "float32", *extra,
    ]  # fmt: skip


def test_long_run_resumes_mid_epoch_to_the_same_weights(tmp_path):
    """The checkpoint holds weights, optimizer state and data position (epoch, step)."""
    import keras

    import keras_symconv  # noqa: F401

    train_long = _benchmark("train_rna_long")
    data = tmp_path / "data"
    data.mkdir()
    _write_split(data)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train_long.main(_long_argv(data, whole)) == 0
    # Stopped after 2 of epoch 1's 3 steps, then after 2 more (epoch 2's
    # first), then to the end.
    assert train_long.main(_long_argv(data, parts, ("--stop-after-steps", "2"))) == 3
    state = json.loads((parts / "scnn" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["steps"]) == (0, 2, 2)
    assert train_long.main(_long_argv(data, parts, ("--stop-after-steps", "2"))) == 3
    state = json.loads((parts / "scnn" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["steps"]) == (1, 1, 4)
    assert train_long.main(_long_argv(data, parts)) == 0

    finals = []
    for out in (whole, parts):
        model = keras.saving.load_model(str(out / "scnn" / "last.keras"))
        finals.append(([np.asarray(w) for w in model.weights], model.optimizer.iterations))
    assert int(finals[0][1]) == int(finals[1][1]) == 6  # 6 sequences / batch 2, two epochs
    for a, b in zip(finals[0][0], finals[1][0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    state = json.loads((parts / "scnn" / "state.json").read_text())
    assert [h["crop"] for h in state["history"]] == [16, 20]  # the schedule
    assert [v["epoch"] for v in state["validations"]] == [1, 2]
    from keras_symconv.training import THRESHOLDS

    assert state["best"]["threshold"] in THRESHOLDS
    # The widened grid holds the authors' grid: its best is at least as good.
    top = state["best"]["top_grid"]
    assert top["threshold"] in THRESHOLDS + train_long.TOP_THRESHOLDS
    assert top["accuracy"] >= state["best"]["accuracy"]
    assert set(top["accuracy_by_threshold"]) == {"0.9", "0.95", "0.97", "0.98", "0.99"}
    assert (parts / "scnn" / "best.weights.h5").exists()
    config = json.loads((parts / "config.json").read_text())
    assert config["output_bias"] < 0 and config["schedule"] == [[16, 1], [20, None]]
    # The recipe is pinned; the report draws the curves.
    with pytest.raises(SystemExit, match="started with lr = 0.002, not 0.001"):
        train_long.main(_long_argv(data, parts, ("--lr", "1e-3")))
    assert train_long.main([*_long_argv(data, parts), "--report"]) == 0
    assert (parts / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| SCNN | 2 | 6 | 20 |" in (parts / "summary.md").read_text()


def test_long_run_convergence_rule():
    train_long = _benchmark("train_rna_long")

    def validations(accs, every=5):
        return [{"epoch": every * (k + 1), "accuracy": a, "full": True} for k, a in enumerate(accs)]

    # Best at epoch 10, then three without gain spanning 15 of 25 epochs.
    assert train_long.converged(validations([0.3, 0.5, 0.4, 0.45, 0.49]), 25)
    # Only two after the best.
    assert not train_long.converged(validations([0.3, 0.4, 0.5, 0.45, 0.49]), 25)
    # Three after the best, but spanning less than a quarter of the epochs.
    late = [{"epoch": e, "accuracy": a, "full": True} for e, a in zip(
        (37, 38, 39, 40), (0.5, 0.4, 0.4, 0.4), strict=True)]  # fmt: skip
    assert not train_long.converged(late, 40)
    early = [{**v, "epoch": v["epoch"] - 28} for v in late]  # epochs 9-12
    assert train_long.converged(early, 12)  # the same span is a quarter of 12 epochs
    # Quick-check validations (a subset) never count.
    quick = [{**v, "full": False} for v in validations([0.3, 0.5, 0.4, 0.4, 0.4])]
    assert not train_long.converged(quick, 25)
    assert train_long.crop_of([(128, 2), (256, 1), (500, None)], 0) == 128
    assert [train_long.crop_of([(128, 2), (256, 1), (500, None)], e) for e in range(5)] == [
        128, 128, 256, 500, 500]  # fmt: skip
