import json
import subprocess
import sys


def test_cli_prints_one_json_object(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.shapes",
        "score",
        "--generator",
        "real",
        "--suite",
        "eval",
        "--n",
        "20",
        "--seed",
        "0",
        "--json",
        "--cache-dir",
        str(tmp_path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300)
    metrics = json.loads(out.stdout)
    assert metrics["alignment"] == 1.0 and metrics["generator"] == "real"
    assert {"fid_frame", "kid_clip", "temporal_flickering", "palette_fidelity"} <= set(metrics)


def test_cli_rejects_unknown_generator():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.shapes", "score", "--generator", "noise"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "generator" in out.stderr


def test_cli_bench_runs_the_speed_benchmark(monkeypatch, capsys):
    from benchmarks.shapes import __main__ as cli
    from benchmarks.shapes import speed

    monkeypatch.setattr(speed, "measure_speed", lambda cache_dir: {"cache_dir": cache_dir})
    assert cli.main(["bench", "--cache-dir", "somewhere"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cache_dir": "somewhere"}
