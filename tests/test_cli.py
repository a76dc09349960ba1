"""The symconv command-line tool: train, compare, predict, evaluate, errors, multi-worker."""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_symconv as ks
from keras_symconv import data
from keras_symconv.cli import main
from keras_symconv.training import THRESHOLDS, read_decoding

TINY_TRAIN = [
    "--synthetic", "12", "--synthetic-length", "20", "28", "--epochs", "2",
    "--batch-size", "4", "--crop", "24", "--verbose", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """The main job's command at a tiny size: both models, each as `rna train` trains it."""
    out = tmp_path_factory.mktemp("compare")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["rna", "compare", *TINY_TRAIN, "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def trained(compared):
    return compared[0] / "scnn"


def test_train_writes_model_savedmodel_and_json(trained):
    run = json.loads((trained / "run.json").read_text())
    assert run["model"] == "scnn" and run["trainable_params"] == 239_318
    assert run["train_sequences"] + run["valid_sequences"] == 12
    assert len(run["history"]) == 2
    assert {"val_ppv", "val_sen", "val_acc", "loss", "seconds"} <= set(run["history"][0])
    assert run["settings"]["epochs"] == 2 and run["settings"]["lr"] == 2e-3
    best = max(h["val_acc"] for h in run["history"])
    assert run["best_valid"]["accuracy"] == pytest.approx(best, abs=1e-6)
    # The threshold was chosen on validation and is stored in model.keras;
    # the output started at the prior log-odds of the training crops.
    stored = read_decoding(str(trained / "model.keras"))
    assert stored["chosen_on"] == "validation" and stored["threshold"] in THRESHOLDS
    assert run["threshold"] == stored["threshold"]
    assert stored["valid_accuracy"] == pytest.approx(best, abs=1e-6)
    best_epoch = max(run["history"], key=lambda h: h["val_acc"])
    assert best_epoch["threshold"] == stored["threshold"] == run["best_valid"]["threshold"]
    assert -8 < run["output_bias"] < 0
    model = keras.saving.load_model(trained / "model.keras", safe_mode=True)
    served = tf.saved_model.load(str(trained / "savedmodel"))
    for length in (17, 33):
        x = data.one_hot("ACGU" * (length // 4) + "A" * (length % 4))[None]
        out = served.serve(tf.constant(x)).numpy()
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-5, atol=1e-6)
        ks.check_symmetric(out)


def test_predict_writes_structures_and_heatmaps(trained, tmp_path, capsys):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">seq one\nGGGGAAACCCCAUAUAGGCGCAAAAGCGCC\n>b\nACGUACGUAAUU\n")
    ct = tmp_path / "x.ct"
    data.write_ct(str(ct), data.synthetic_rna_dataset(1, 25, 25, seed=9))
    out = tmp_path / "pred"
    assert (
        main(
            ["rna", "predict", str(trained / "model.keras"), str(fasta), str(ct), "--out", str(out)]
        )
        == 0
    )
    for stem, sequence in (("seq_one", "GGGGAAACCCCAUAUAGGCGCAAAAGCGCC"), ("b", "ACGUACGUAAUU")):
        (db,) = data.read_dot_bracket(str(out / f"{stem}.dbn"))
        (ctr,) = data.read_ct(str(out / f"{stem}.ct"))
        assert db.sequence == ctr.sequence == sequence
        np.testing.assert_array_equal(db.partners, ctr.partners)
        png = (out / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
        (bp,) = data.read_bpseq(str(out / f"{stem}.bpseq"))
        np.testing.assert_array_equal(bp.partners, ctr.partners)
    assert (out / "x.ct.png").exists()
    text = capsys.readouterr().out
    assert "seq one:" in text
    threshold = read_decoding(str(trained / "model.keras"))["threshold"]
    assert f"decoding threshold {threshold:g} (stored in the model (validation))" in text
    assert main(["rna", "predict", str(trained / "model.keras"), str(fasta), "--out", str(out),
                 "--threshold", "0.7", "--no-png"]) == 0  # fmt: skip
    assert "decoding threshold 0.7 (given with --threshold)" in capsys.readouterr().out


def test_predict_writes_every_file_when_dot_bracket_cannot_hold_the_pairs(
    trained, tmp_path, monkeypatch, capsys
):
    """40 mutually crossing pairs need 40 bracket kinds; dot-bracket has 30."""
    import keras_symconv.cli.rna as rna_cli

    def crossing_map(structure):
        length = len(structure)
        prob = np.zeros((length, length), np.float32)
        if length == 80:
            for i in range(40):  # (i, i + 40) crosses every other such pair
                prob[i, i + 40] = prob[i + 40, i] = 0.99
        return prob

    monkeypatch.setattr(rna_cli, "make_predictor", lambda model, task=None, **kw: crossing_map)
    fasta = tmp_path / "in.fa"
    fasta.write_text(f">knotty\n{'GC' * 40}\n>next\n{'A' * 20}\n")
    out = tmp_path / "pred"
    assert main(["rna", "predict", str(trained / "model.keras"), str(fasta), "--out", str(out),
                 "--threshold", "0.5"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    expected = [(i, i + 40) for i in range(40)]
    (ct,) = data.read_ct(str(out / "knotty.ct"))
    (bp,) = data.read_bpseq(str(out / "knotty.bpseq"))
    assert sorted(ct.pairs) == sorted(bp.pairs) == expected
    assert (out / "knotty.png").read_bytes()[:4] == b"\x89PNG"
    (db,) = data.read_dot_bracket(str(out / "knotty.dbn"))
    written = sorted(db.pairs)
    assert len(written) == 30 and set(written) <= set(expected)
    assert "knotty: 10 of 40 pairs need more crossing levels than dot-bracket has" in captured.err
    # The next sequence was predicted too.
    assert "next: 0 pairs" in captured.out and (out / "next.ct").exists()


def test_evaluate_prints_table_per_family(trained, tmp_path, capsys):
    folder = tmp_path / "data"
    for fam, seed in (("famA", 1), ("famB", 2)):
        (folder / fam).mkdir(parents=True)
        data.write_dot_bracket(
            str(folder / fam / "s.db"), data.synthetic_rna_dataset(2, 20, 30, seed=seed)
        )
    report = tmp_path / "eval.json"
    assert (
        main(["rna", "evaluate", str(trained / "model.keras"), str(folder), "--json", str(report)])
        == 0
    )
    text = capsys.readouterr().out
    assert "| all | 4 |" in text and "| famA | 2 |" in text and "| famB | 2 |" in text
    assert "threshold" in text and "(stored in the model (validation))" in text
    summary = json.loads(report.read_text())["summary"]
    per_family = (summary["famA"]["accuracy"] + summary["famB"]["accuracy"]) / 2
    assert summary["all"]["accuracy"] == pytest.approx(per_family)


def test_clear_errors(trained, tmp_path, capsys):
    model = str(trained / "model.keras")
    assert main(["rna", "evaluate", str(tmp_path / "missing.keras"), model]) == 2
    assert "missing.keras: no such model file" in capsys.readouterr().err
    odd = tmp_path / "data.xyz"
    odd.write_text("x")
    assert main(["rna", "evaluate", model, str(odd)]) == 2
    assert "unknown structure format '.xyz'" in capsys.readouterr().err
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    other.save(tmp_path / "other.keras")
    assert main(["rna", "evaluate", str(tmp_path / "other.keras"), str(odd)]) == 2
    assert "not a keras-symconv RNA model" in capsys.readouterr().err
    (tmp_path / "junk.keras").write_text("not a zip")
    assert main(["rna", "predict", str(tmp_path / "junk.keras"), str(odd), "--out", "x"]) == 2
    assert "not a keras-symconv model" in capsys.readouterr().err
    assert main(["rna", "train", "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --data and --synthetic" in capsys.readouterr().err


def test_compare_main_job_tiny(compared):
    out, text = compared
    assert "| cnn | 389,538 |" in text and "| scnn | 239,318 |" in text
    assert (out / "heatmaps.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((out / "compare.json").read_text())
    assert [r["model"] for r in rows] == ["cnn", "scnn"]
    # Each model is what `rna train --model KIND` writes, in its own folder.
    assert json.loads((out / "cnn" / "run.json").read_text())["trainable_params"] == 389_538


def test_module_entry_point(tmp_path):
    # Run outside the checkout: from its root, `python -m` would import the
    # source folder keras_symconv/, which lacks the installed models mapping.
    result = subprocess.run(
        [sys.executable, "-m", "keras_symconv", "rna", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "--strategy" in result.stdout


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_two_local_processes(tmp_path):
    """MultiWorkerMirroredStrategy, 2 CPU workers on loopback: identical weights."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "mw"
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "keras_symconv",
                    "rna",
                    "train",
                    *TINY_TRAIN,
                    "--strategy",
                    "multiworker",
                    "--out",
                    str(out),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=tmp_path,
            )
        )
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=400)[0])
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    chief = keras.saving.load_model(out / "model.keras")
    worker = keras.saving.load_model(out / "worker_1" / "model.keras")
    for a, b in zip(chief.get_weights(), worker.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    run = json.loads((out / "run.json").read_text())
    assert run["replicas"] == 2
    x = data.one_hot("GGGAAACCCUUUAGCUAGCUAGGC")[None]
    ks.check_symmetric(chief(x).numpy())


def _random_chain_json(path, rng, lengths):
    records = []
    for k, n in enumerate(lengths):
        steps = rng.normal(size=(n, 3))
        steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
        ca = np.cumsum(steps, axis=0)
        coords = np.stack([ca - 1.0, ca, ca + 1.0, ca + 2.0], axis=1).round(3).tolist()
        coords[3][1] = None  # one missing C-alpha
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=n))
        records.append({"name": f"p{k}", "seq": seq, "coords": coords})
    path.write_text(json.dumps(records))


def test_contact_train_predict_evaluate(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data_file = tmp_path / "chains.json"
    _random_chain_json(data_file, rng, [30, 34, 38, 42, 46, 50, 26, 60])
    out = tmp_path / "contact"
    args = ["contact", "train", "--data", str(data_file), "--length", "25", "55",
            "--epochs", "1", "--batch-size", "3", "--crop", "30", "--verbose", "0",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["trainable_params"] == 1_364_788
    assert run["train_sequences"] + run["valid_sequences"] == 7  # the 60-residue chain is out
    assert "long_L/5" in run["best_valid"] and "medium_L/5" in run["best_valid"]
    model = str(out / "model.keras")
    pred = tmp_path / "pred"
    assert main(["contact", "predict", model, str(data_file), "--out", str(pred),
                 "--top", "10"]) == 0  # fmt: skip
    lines = (pred / "p0.rr").read_text().splitlines()
    assert lines[:3] == ["PFRMAT RR", "TARGET p0", "MODEL 1"] and lines[-1] == "END"
    assert len(lines) == 3 + 1 + 10 + 1
    assert (pred / "p7.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["contact", "evaluate", model, str(data_file)]) == 0
    text = capsys.readouterr().out
    assert "| all | 8 |" in text and "top-L precision: long_L" in text
    # Masked residues never count: a perfect predictor that also claims pairs
    # with the residue lacking coordinates keeps PPV 1.
    from keras_symconv.cli import build_parser
    from keras_symconv.inference import evaluate_structures
    from keras_symconv.tasks import TASKS

    task = TASKS["contact"]
    parsed = build_parser().parse_args(["contact", "evaluate", model, str(data_file)])
    examples = task.read([str(data_file)], parsed)
    assert all(e.mask[3] == 0 for e in examples)

    def claims_masked(example):
        prob = 0.9 * example.contacts
        prob[3, :] = prob[:, 3] = 0.99
        return prob

    result = evaluate_structures(claims_masked, examples, task=task)
    assert result["ppv"] == 1.0 and 0 < result["sensitivity"] < 1
    assert main(["contact", "evaluate", str(tmp_path / "nope.keras"), str(data_file)]) == 2
    assert "nope.keras: no such model file" in capsys.readouterr().err

    # Alignment features: chain p1's alignment holds its sequence (with a gap
    # column); the others match no alignment and say so.
    chains = json.loads(data_file.read_text())
    seq = chains[1]["seq"]
    rows = [seq[:10] + "-" + seq[10:]] + [
        "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY-"), size=len(seq) + 1)) for _ in range(30)
    ]
    aln_dir = tmp_path / "aln"
    aln_dir.mkdir()
    (aln_dir / "fam.fa").write_text("".join(f">r{k}\n{r}\n" for k, r in enumerate(rows)))
    assert main(["contact", "evaluate", model, str(data_file), "--alignments", str(aln_dir)]) == 0
    captured = capsys.readouterr()
    assert "p0: no alignment matches; its alignment features are zero" in captured.err
    assert "p1: no alignment matches" not in captured.err
    args = build_parser().parse_args(
        ["contact", "evaluate", model, str(data_file), "--alignments", str(aln_dir)]
    )
    examples = {e.name: e for e in TASKS["contact"].read([str(data_file)], args)}
    assert np.abs(examples["p1"].pair_features[..., :2]).sum() > 0
    assert np.all(examples["p0"].pair_features[..., :2] == 0)

    # Prediction from sequences alone (FASTA): p1's sequence takes its
    # alignment and predicts what its structure record predicts; p0's has none.
    fasta = tmp_path / "seqs.fa"
    fasta.write_text(f">p0 no alignment\n{chains[0]['seq']}\n>p1\n{chains[1]['seq'].lower()}\n")
    from_seq, from_struct = tmp_path / "from_seq", tmp_path / "from_struct"
    assert main(["contact", "predict", model, str(fasta), "--alignments", str(aln_dir),
                 "--out", str(from_seq)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "p0: no alignment matches; its alignment features are zero" in captured.err
    assert "p1: 34 residues, alignment" in captured.out and "identity 1.00" in captured.out
    assert main(["contact", "predict", model, str(data_file), "--alignments", str(aln_dir),
                 "--out", str(from_struct), "--no-png"]) == 0  # fmt: skip
    for name in ("p0", "p1"):
        assert (from_seq / f"{name}.rr").read_text() == (from_struct / f"{name}.rr").read_text()
        assert (from_seq / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # One sequence, one alignment file; without any, the tool says so.
    one = tmp_path / "one.fa"
    one.write_text(f">p1\n{chains[1]['seq']}\n")
    assert main(["contact", "predict", model, str(one), "--alignment",
                 str(aln_dir / "fam.fa"), "--out", str(tmp_path / "one")]) == 0  # fmt: skip
    assert (tmp_path / "one" / "p1.rr").read_text() == (from_struct / "p1.rr").read_text()
    capsys.readouterr()
    assert main(["contact", "predict", model, str(one), "--out", str(tmp_path / "none")]) == 0
    assert "p1: no alignment given; its alignment features are zero" in capsys.readouterr().err
    assert (tmp_path / "none" / "p1.rr").read_text() != (from_struct / "p1.rr").read_text()
    # An alignment that is not the sequence's is refused, naming the file.
    assert main(["contact", "predict", model, str(fasta), "--alignment",
                 str(aln_dir / "fam.fa"), "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "is for one chain; the inputs have 2" in capsys.readouterr().err
    (tmp_path / "p0.fa").write_text(f">p0\n{chains[0]['seq']}\n")
    assert main(["contact", "predict", model, str(tmp_path / "p0.fa"), "--alignment",
                 str(aln_dir / "fam.fa"), "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "fam.fa: no row matches the chain" in capsys.readouterr().err
    bad = tmp_path / "bad.fa"
    bad.write_text(">q\nACDZ\n")
    assert main(["contact", "predict", model, str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "bad.fa:2: 'Z' is not an amino acid" in capsys.readouterr().err
