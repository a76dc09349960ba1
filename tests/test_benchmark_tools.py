"""The benchmarks' measuring tools measure what they claim."""

import os
import sys
import textwrap

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import timing  # noqa: E402

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc/self/clear_refs"
)


def _child(tmp_path, mib, traced_mib=0):
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import numpy as np
            sys.path.insert(0, {BENCHMARKS!r})
            from timing import step_peak_mib

            kept = []

            def trace():
                # Held from before the measured step on: not the step's.
                kept.append(np.ones(({traced_mib} * 1024 * 1024 // 8,)))

            def step(_):
                if {mib}:
                    block = np.ones(({mib} * 1024 * 1024 // 8,))  # touched: resident
                    return float(block.sum())
                return 0.0

            print(*step_peak_mib(step, None, trace))
            """
        )
    )
    return timing.run_memory_child(str(script), [], runs=1).resident


def test_step_peak_memory_sees_a_known_allocation(tmp_path):
    big = _child(tmp_path, 300)
    none = _child(tmp_path, 0)
    assert 280 <= big <= 340, big
    assert none < 20, none


def test_step_peak_memory_leaves_out_what_tracing_holds(tmp_path):
    assert _child(tmp_path, 0, traced_mib=300) < 20
    assert 280 <= _child(tmp_path, 300, traced_mib=300) <= 340


def test_memory_figure_is_the_median_of_fresh_processes(tmp_path):
    counter = tmp_path / "count"
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            path = {str(counter)!r}
            n = int(open(path).read()) if os.path.exists(path) else 0
            open(path, "w").write(str(n + 1))
            print("noise")
            print([10.0, 50.0, 20.0][n])
            """
        )
    )
    assert timing.run_memory_child(str(script), [], runs=3) == (20.0, None)
    assert counter.read_text() == "3"


def test_interleaved_timing_returns_one_median_per_step():
    import time

    slow = lambda _: time.sleep(0.02)  # noqa: E731
    fast = lambda _: time.sleep(0.002)  # noqa: E731
    t_slow, t_fast = timing.time_many([slow, fast], None, reps=3, warmup=1)
    assert t_slow > 5 * t_fast > 0


def _tf_child(tmp_path, mib_per_run):
    """The :class:`Peak` of a child whose k-th step fills a tensor of ``mib_per_run[k]`` MiB."""
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import tensorflow as tf
            sys.path.insert(0, {BENCHMARKS!r})
            from timing import step_peak_mib

            sizes = iter({list(mib_per_run)!r})

            def step(_):
                return float(tf.reduce_sum(tf.fill([next(sizes) * 1024 * 1024 // 4], 1.0)))

            print(*step_peak_mib(step, None, warm_runs={len(mib_per_run) - 1}))
            """
        )
    )
    peak = timing.run_memory_child(str(script), [], runs=1)
    if peak.allocator is None:
        pytest.skip("TensorFlow's CPU allocator keeps no statistics here (oneDNN off)")
    return peak


def test_allocator_peak_sees_a_known_tensor(tmp_path):
    peak = _tf_child(tmp_path, [200] * 4)
    assert 195 <= peak.allocator <= 260, peak
    assert 150 <= peak.resident <= 300, peak


def test_allocator_figure_is_the_median_of_the_warm_runs(tmp_path):
    # Runs 1-4 hold 100, 300, 200 and 40 MiB: the resident figure is the
    # first run's, the allocator figure the median of runs 2-4.
    peak = _tf_child(tmp_path, [100, 300, 200, 40])
    assert 195 <= peak.allocator <= 260, peak
    assert 75 <= peak.resident <= 160, peak


def test_backend_speed_prints_both_tables_with_positive_ratios(capsys):
    import backend_speed

    argv = (
        "--backend tensorflow --reps 1 --side 16 --channels 2 --kernel 3 --crop 12 --batch 2 "
        "--infer-length 14 --tiny"
    ).split()
    assert backend_speed.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# backend_speed: ") and "tensorflow 2." in lines[0]
    rows = [line.split(" | ") for line in lines if line.startswith("| ") and " vs " in line]
    assert [r[0] for r in rows] == [
        "| SymmetryPreserving2D vs Conv2D",
        "| FusedSymmetryGenerating2D vs SelfCartesian + Conv2D",
    ]
    assert all(float(r[3]) > 0 and float(r[5].rstrip(" |")) > 0 for r in rows)
    steps = [
        line for line in lines if line.startswith("| training") or line.startswith("| inference")
    ]
    assert len(steps) == 2 and "batch 2 x 12" in steps[0] and "1 x 14" in steps[1]
    assert all(float(s.split(" | ")[-1].rstrip(" |")) > 0 for s in steps)


def test_backend_speed_times_one_scnn_per_layout(capsys):
    import backend_speed

    argv = (
        "--backend tensorflow --reps 1 --side 16 --channels 2 --kernel 3 --crop 12 --batch 2 "
        "--infer-length 14 --tiny --layouts full upper"
    ).split()
    assert backend_speed.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| RNA step"))
    assert "SCNN full s | SCNN full / CNN | SCNN upper s | SCNN upper / CNN" in header
    steps = [line.split(" | ") for line in lines if line.startswith(("| training", "| inference"))]
    assert len(steps) == 2 and all(len(cells) == 6 for cells in steps)
    assert all(float(cells[-1].rstrip(" |")) > 0 and float(cells[3]) > 0 for cells in steps)


def _gpu_check(tmp_path, *argv):
    """benchmarks/gpu_check.py on JAX, in a Python where TensorFlow cannot be
    imported (as on the device machine); returns (exit status, stdout)."""
    import subprocess

    block = tmp_path / "no_tensorflow"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
    env = dict(os.environ, PYTHONPATH=str(block))
    command = [sys.executable, os.path.join(BENCHMARKS, "gpu_check.py"), "--backend", "jax"]
    done = subprocess.run(
        [*command, "--tiny", "--crop", "16", "--batch-size", "2", *argv],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, done.stdout


def test_gpu_check_fits_both_models_without_tensorflow(tmp_path):
    import json

    pytest.importorskip("jax")
    status, out = _gpu_check(tmp_path, "--steps", "40", "--out", str(tmp_path / "check"))
    assert status == 0, out
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| ")}
    assert {"| CNN", "| SCNN", "| SCNN / CNN"} <= set(rows)
    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert report["failed"] == []
    by = {r["model"]: r for r in report["results"]}
    assert by["scnn"]["asymmetry"] < 1e-5 < by["cnn"]["asymmetry"]
    for r in by.values():
        assert r["steps"] == 40 and r["loss_last"] < r["loss_first"]
        assert 0 < r["warm_step_s"] and r["peak_bytes"] > 0


def test_gpu_check_trains_from_a_long_run_folder(tmp_path):
    import json

    pytest.importorskip("jax")
    import gpu_check
    import numpy as np
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    import keras_symconv as ks

    init = tmp_path / "init"
    for kind, build in (("scnn", build_rna_scnn), ("cnn", build_rna_cnn)):
        (init / kind).mkdir(parents=True)
        build(output_bias=-3.0, **gpu_check.TINY).save(str(init / kind / "last.keras"))
    (init / "config.json").write_text(json.dumps({"output_bias": -3.0, "bn_momentum": 0.9}))
    out = tmp_path / "train"
    status, printed = _gpu_check(tmp_path, "--train", "0.2", "--init", str(init), "--out", str(out))
    assert status == 0, printed
    for kind in ("scnn", "cnn"):
        figures = json.loads((out / f"{kind}.json").read_text())
        assert figures["started_from"].endswith(os.path.join(kind, "last.keras"))
        assert figures["steps"] == len(figures["losses"]) > 1
        assert (out / f"{kind}.keras").stat().st_size > 0
    # The model written on JAX (full layout) loads here (TensorFlow: the upper
    # layout) and predicts symmetric maps.
    model = build_rna_scnn(weights=str(out / "scnn.keras"), **gpu_check.TINY)
    x = np.eye(5, dtype="float32")[np.random.default_rng(0).integers(0, 5, (1, 12))]
    y = model.predict(x, verbose=0)
    assert ks.asymmetry(y) < 1e-5 and 0 < y.min() and y.max() < 1


def test_scaling_tables_figure_and_exponent(tmp_path, capsys):
    import json

    import scaling

    argv = ["--tiny", "--crops", "16", "--batches", "1", "--precisions", "float32",
            "--lengths", "40", "--reps", "1", "--infer-reps", "1",
            "--out", str(tmp_path)]  # fmt: skip
    assert scaling.main(argv) == 0
    text = (tmp_path / "rna_scaling.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| float32 | 16 | 1 |")]
    assert [r.split(" | ")[3] for r in rows] == ["known", "unknown"]
    results = json.loads((tmp_path / "rna_scaling.json").read_text())["results"]
    train = next(r for r in results if r["part"] == "train")
    assert set(train["warm"]) == {"cnn/known", "cnn/unknown", "scnn/known", "scnn/unknown"}
    assert all(v > 0 for v in train["warm"].values())
    assert all(train["first"][k] > train["warm"][k] for k in train["warm"])
    infer = [r for r in results if r["part"] == "infer"]
    assert sorted((r["model"], r["length"]) for r in infer) == [("cnn", 40), ("scnn", 40)]
    assert all(r["resident_mib"] >= 0 and not r["tiled"] for r in infer)
    assert (tmp_path / "rna_scaling.png").read_bytes()[:4] == b"\x89PNG"
    # Time ~ L^k from two points is their slope in log-log.
    assert scaling.growth_exponent([500, 1000], [1.0, 4.0]) == pytest.approx(2.0)
    assert scaling.growth_exponent([100, 1000], [1.0, 4.0]) is None


def test_scaling_keeps_the_other_rows_when_a_child_dies(tmp_path, monkeypatch, capsys):
    import scaling

    # A child that dies is reported, not raised (here: an unknown part).
    assert scaling.run_child(["--child", "nothing:rna"]) == {"failed": "exit 1"}
    assert "--child nothing:rna failed (exit 1)" in capsys.readouterr().err
    fake = {"first": 2.0, "warm": 1.0, "resident_mib": 10.0, "allocator_mib": None,
            "tiled": False}  # fmt: skip

    def child(argv, for_memory=False):
        return {"failed": "signal 6"} if ":cnn:" in argv[1] else dict(fake)

    monkeypatch.setattr(scaling, "run_child", child)
    args = scaling.parse_args(["--lengths", "100", "--out", str(tmp_path)])
    results = []
    row = scaling.infer_table(args, results).splitlines()[-1]
    assert row.startswith("| 100 | - | - | 2.00 | 1.00 | **-** |")
    assert "CNN failed (signal 6)" in row
    assert [r.get("failed") for r in results] == ["signal 6", None]
    scaling.plot(args, results, str(tmp_path / "x.png"))  # the failed row is left out
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
