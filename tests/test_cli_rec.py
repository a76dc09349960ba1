"""``symconv rec train|evaluate`` on a small generated interaction file."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_symconv.models import all_items_model

from keras_symconv.cli import main
from keras_symconv.data import read_interactions

TINY = ["--epochs", "3", "--batch-size", "32", "--embedding-dim", "6", "--verbose", "0"]


def _write_histories(path, users=30, items=25, seed=0):
    """Each user walks a cycle of items from a random start; users interleaved.

    Returns each user's items in time order (raw tokens).
    """
    rng = np.random.default_rng(seed)
    walks = {
        f"u{u}": [f"i{(int(start) + k) % items}" for k in range(8 + u % 4)]
        for u, start in enumerate(rng.integers(items, size=users))
    }
    pending = {u: list(w) for u, w in walks.items()}
    lines = []
    while pending:
        user = sorted(pending)[int(rng.integers(len(pending)))]
        lines.append(f"{user} {pending[user].pop(0)} 1")
        if not pending[user]:
            del pending[user]
    path.write_text("\n".join(lines) + "\n")
    return walks


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rec")
    data = folder / "interactions.txt"
    walks = _write_histories(data)
    out = folder / "run"
    assert main(["rec", "train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return data, out, walks


def test_reader_keeps_each_users_time_order(trained):
    data, _, walks = trained
    inter = read_interactions(str(data))
    items = {v: k for k, v in inter.item_map.items()}
    for user, u in inter.user_map.items():
        assert [items[i] for i in inter.sequences[u]] == walks[user]


def test_train_writes_the_run_and_chooses_the_best_validation_epoch(trained, capsys):
    data, out, _ = trained
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == "scosrec" and run["users"] == 30 and run["items"] == 25
    counts = run["interactions"]
    assert sum(counts.values()) == sum(8 + u % 4 for u in range(30))
    assert counts["valid"] == 30 and counts["test"] == 2 * 30  # 1 and 2 of 8-11 per user
    assert [h["epoch"] for h in run["history"]] == [1, 2, 3]
    best = max(run["history"], key=lambda h: h["valid"]["map"])
    assert run["best_epoch"] == best["epoch"]
    assert run["valid"]["map"] == pytest.approx(best["valid"]["map"])
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    assert vocabulary["data"] == [str(data)] and vocabulary["split"] == [0.7, 0.1, 0.2]
    assert len(vocabulary["users"]) == 30 and sorted(vocabulary["items"].values()) == list(
        range(1, 26)
    )
    # evaluate reproduces the test figures of the run, on the recorded data and split
    capsys.readouterr()
    assert main(["rec", "evaluate", str(out / "model.keras"), "--json", str(out / "e.json")]) == 0
    figures = json.loads((out / "e.json").read_text())
    assert figures == pytest.approx(run["test"])
    assert "test part, 30 users" in capsys.readouterr().out
    assert main(["rec", "evaluate", str(out / "model.keras"), "--part", "valid",
                 "--json", str(out / "v.json")]) == 0  # fmt: skip
    assert json.loads((out / "v.json").read_text()) == pytest.approx(run["valid"])


def test_savedmodel_scores_all_items(trained):
    _, out, _ = trained
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    served = tf.saved_model.load(str(out / "savedmodel"))
    users = np.array([0, 3, 7], np.int32)
    seqs = np.array([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8], [9, 1, 9, 1, 9]], np.int32)
    scores = served.serve([tf.constant(users), tf.constant(seqs)]).numpy()
    assert scores.shape == (3, 26)
    expected = all_items_model(model)({"user": users, "sequence": seqs})
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_errors_name_the_file_and_line(tmp_path, trained, capsys):
    _, out, _ = trained
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 i1 1\nu1 i2 1\nu1\n")
    assert main(["rec", "train", "--data", str(bad), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert f"{bad}:3: expected 'user item [rating]'" in capsys.readouterr().err
    unknown = tmp_path / "new.txt"
    unknown.write_text("".join(f"stranger i{k} 1\n" for k in range(5)))
    assert main(["rec", "evaluate", str(out / "model.keras"), "--data", str(unknown)]) == 2
    assert "1 user(s) of the data are not in the model's vocabulary" in capsys.readouterr().err
    assert main(["rec", "train", "--data", str(bad), "--train", str(bad), "--out", "x"]) == 2
    assert "either --data or --train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rec", "train", "--data", str(bad), "--out", "x", "--epochs", "0"])


def test_presplit_files(tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("".join(f"u{u} i{(u + k) % 12} 1\n" for u in range(10) for k in range(9)))
    test.write_text("".join(f"u{u} i{(u + 9) % 12} 1\n" for u in range(10)))
    out = tmp_path / "run"
    args = ["rec", "train", "--train", str(train), "--test", str(test), "--model", "cosrec"]
    assert main([*args, "--out", str(out), *TINY]) == 0
    run = json.loads((out / "run.json").read_text())
    # no validation part: the last epoch is kept
    assert run["valid"] is None and run["best_epoch"] == 3 and run["test"]["users"] == 10
    assert run["interactions"] == {"train": 90, "valid": 0, "test": 10}
    assert main(["rec", "evaluate", str(out / "model.keras"), "--json", str(out / "t.json")]) == 0
    assert json.loads((out / "t.json").read_text()) == pytest.approx(run["test"])
