"""The real vbench environment: a shapes spec scored with `vbench.temporal_flickering` end to end,
VBench-I2V on custom inputs, and the I2V info file read by the evaluator's own code.

The env is built on first use (`harness.env.create_env`, about 70 s on 2 cores) at its default
path (<repo>/.cache/envs/vbench or $URSA_VBENCH_ENV) and reused afterwards.
temporal_flickering is the only VBench dimension that needs no weights, so it is what runs here.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from benchmarks.official.export import I2V_INFO, export_vbench_i2v_custom
from harness import plugins
from harness.env import env_python
from harness.store import load_results

WORLD = {"frames": 4, "height": 16, "width": 16, "max_objects": 1, "speed": 1.0}
BENCH = {"name": "shapes", "world": WORLD, "train_size": 16, "eval_size": 4, "task_size": 2}


@pytest.fixture(scope="module")
def vbench_env():
    from harness.env import create_env

    return create_env("vbench", progress=False)


def flickering(videos: np.ndarray) -> np.ndarray:
    """The project's recomputation of VBench's formula per clip: (255 - mean |f_t+1 - f_t|) / 255,
    videos uint8 (N, F, H, W, 3) -> (N,)."""
    diff = np.abs(np.diff(videos.astype(np.float64), axis=1))
    return (255.0 - diff.reshape(len(videos), -1).mean(1)) / 255.0


def harness_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_smoke_spec_scores_with_vbench_end_to_end(vbench_env, tmp_path):
    spec = tmp_path / "vbench_smoke.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "vbench_smoke",
                "base": {
                    "benchmark": BENCH,
                    "tokenizer": {"codebook_size": 65},
                    "model": {"preset": "tiny"},
                    "train": {
                        "steps": 4,
                        "batch_size": 4,
                        "checkpoint_every": 2,
                        "warmup_steps": 1,
                    },
                    "sample": {"steps": 2, "batch_size": 4},
                    "score": {"which": ["alignment", "vbench.temporal_flickering"]},
                },
                "executor": {"kind": "inprocess", "threads": 1},
            }
        )
    )
    root = tmp_path / "runs"
    reports = tmp_path / "reports"
    first = harness_cli(
        "run", str(spec), "--runs-root", str(root), "--reports-dir", str(reports), cwd=tmp_path
    )
    assert first.returncode == 0, first.stdout + first.stderr
    df = load_results(root, "vbench_smoke", "default")
    assert set(df["state"]) == {"done"} and len(df) == 7  # the arm + 6 reference generators

    # The arm's numbers from the real vbench env equal our formula on the same decoded frames.
    base = df[df["arm"] == "base"].iloc[0]
    videos = load_file(f"{base['run_dir']}/stages/sample/samples.safetensors")["t2v"].numpy()
    ours = flickering(videos)
    clips = json.loads(open(f"{base['run_dir']}/stages/score/clips.json").read())[
        "vbench.temporal_flickering"
    ]
    assert clips == pytest.approx(ours.tolist(), abs=0.01)
    assert base["metric.vbench.temporal_flickering"] == pytest.approx(ours.mean(), abs=0.01)
    # ... and so do the real clips' (the ceiling row), from the benchmark's own renderer
    from harness.data import data_for
    from harness.spec import RunConfig

    config = RunConfig.model_validate(
        json.loads(open(f"{base['run_dir']}/config.json").read())["config"]
    )
    bench = data_for(config, root).benchmark
    real = df[df["arm"] == "ref:real"].iloc[0]
    assert real["metric.vbench.temporal_flickering"] == pytest.approx(
        flickering(bench.real_videos(bench.suite("t2v")).numpy()).mean(), abs=0.01
    )
    assert real["metric.vbench.temporal_flickering"] > base["metric.vbench.temporal_flickering"]

    # A rerun never rescores: the cache entries stay as they were (the report `run` rendered
    # read the results only).
    entries = sorted((root / "_cache" / "official" / "scores").glob("*/scores.json"))
    stamps = [p.stat().st_mtime_ns for p in entries]
    assert len(entries) == 7  # one per row: the arm and the 6 reference generators
    again = harness_cli("run", str(spec), "--runs-root", str(root), "--no-report", cwd=tmp_path)
    assert again.returncode == 0 and "0 dispatched" in again.stdout, again.stdout + again.stderr
    assert [p.stat().st_mtime_ns for p in entries] == stamps
    assert sorted((root / "_cache" / "official" / "scores").glob("*/scores.json")) == entries

    # The report carries VBench's Quality over the one dimension present, labelled partial, and
    # the official missing-as-0 figure beside it.
    text = (reports / "vbench_smoke" / "default" / "report.md").read_text()
    assert "vbench aggregates are partial" in text and "vbench.quality_missing_as_0" in text
    quality = 100 * (base["metric.vbench.temporal_flickering"] - 0.6293) / (1 - 0.6293)
    derived, _ = plugins.derived_metrics(
        {"vbench.temporal_flickering": base["metric.vbench.temporal_flickering"]}
    )
    assert derived["vbench.quality"] == pytest.approx(quality)
    assert f"{quality:.4g}" in text


def test_vbench_i2v_scores_custom_inputs_through_its_info_file(vbench_env, tmp_path):
    """vbench2_beta_i2v's evaluator on the shapes I2V suite: the real clips (whose first frames are
    the given images) scored for temporal_flickering, which needs no weights."""
    from benchmarks.shapes.plugin import ShapesBenchmark

    bench = ShapesBenchmark(
        ShapesBenchmark.Options(**{k: v for k, v in BENCH.items() if k != "name"}),
        tmp_path / "cache",
    )
    prompts = bench.suite("i2v")
    videos = bench.real_videos(prompts)
    cls = plugins.SCORERS.get("vbench_i2v.temporal_flickering")
    metrics, clips = cls(cls.Options(), bench, tmp_path / "cache").evaluate(
        videos, prompts, "i2v", seed=0
    )
    assert clips["vbench_i2v.temporal_flickering"] == pytest.approx(
        flickering(videos.numpy()).tolist(), abs=0.01
    )
    assert metrics["vbench_i2v.temporal_flickering"] == pytest.approx(
        flickering(videos.numpy()).mean(), abs=0.01
    )


_READ_INFO = """
import json, sys
from vbench2_beta_i2v import VBenchI2V
from vbench2_beta_i2v.utils import load_i2v_dimension_info
from vbench.utils import load_dimension_info
info, videos, out = sys.argv[1:]
bench = VBenchI2V("cpu", info, out)
dims = ["i2v_subject", "i2v_background", "subject_consistency"]
full = bench.build_full_info_json(videos, "read", dims)  # what VBenchI2V.evaluate does first
pairs = {d: load_i2v_dimension_info(full, dimension=d, lang="en", resolution="1-1")[0] for d in dims[:2]}
print(json.dumps({"pairs": pairs, "quality": load_dimension_info(full, dimension=dims[2], lang="en")[0]}))
"""


def test_i2v_info_file_is_read_by_the_evaluators_reader(vbench_env, tmp_path):
    """The info file pairs each video with its given first frame for the evaluator's own readers
    (no weights needed to read it; i2v_subject / i2v_background then load DINO / DreamSim)."""
    g = np.random.default_rng(0)
    videos = g.integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
    import torch

    folder = export_vbench_i2v_custom(
        torch.from_numpy(videos),
        torch.from_numpy(videos[:, 0]),
        ["a red circle", "a red circle", "a blue square"],
        tmp_path / "x",
        ["i2v_subject", "i2v_background", "subject_consistency"],
        lossless=True,
    )
    out = subprocess.run(
        [
            str(env_python(vbench_env)),
            "-P",
            "-c",
            _READ_INFO,
            str(folder / I2V_INFO),
            str(folder / "videos"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    read = json.loads(out.stdout.strip().splitlines()[-1])
    expected = [
        [str(folder / "images" / f"clip{n:05d}.png"), str(folder / "videos" / f"clip{n:05d}-0.mp4")]
        for n in range(3)
    ]
    for dim in ("i2v_subject", "i2v_background"):
        assert sorted(read["pairs"][dim]) == expected, dim  # equal captions stay distinct clips
    assert sorted(read["quality"]) == [v for _, v in expected]
    info = json.loads((folder / I2V_INFO).read_text())
    assert [e["caption"] for e in info] == ["a red circle", "a red circle", "a blue square"]


_DECODE = """
import json, sys
import numpy as np
from vbench.utils import load_video
out = {}
for path in sys.argv[1:]:
    try:
        out[path] = load_video(path, return_tensor=False).tolist()
    except Exception as exc:  # decord's DECORDError: "The size must exactly match"
        out[path] = type(exc).__name__
print(json.dumps(out))
"""


def test_the_widths_decord_cannot_read_are_the_listed_ones(vbench_env, tmp_path):
    """vb.DECORD_UNREADABLE_WIDTHS, re-probed with VBench's own load_video in the env: each listed
    width fails, and its neighbours decode to the exact pixels (lossless export)."""
    from benchmarks.official import vbench_eval as vb
    from benchmarks.official.export import write_video

    listed = sorted(vb.DECORD_UNREADABLE_WIDTHS)
    neighbours = sorted(
        {w + d for w in listed for d in (-1, 1, 2)} - vb.DECORD_UNREADABLE_WIDTHS - {0}
    )
    rng = np.random.default_rng(0)
    clips = {}
    for width in listed + neighbours:
        clips[width] = rng.integers(0, 256, (2, 5, width, 3), dtype=np.uint8)
        write_video(clips[width], tmp_path / f"{width}.mp4", lossless=True)
    out = subprocess.run(
        [
            str(env_python(vbench_env)),
            "-P",
            "-c",
            _DECODE,
            *(str(tmp_path / f"{w}.mp4") for w in clips),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    decoded = {
        int(k.rsplit("/", 1)[1][:-4]): v for k, v in json.loads(out.stdout.splitlines()[-1]).items()
    }
    assert sorted(w for w, v in decoded.items() if isinstance(v, str)) == listed
    for width in neighbours:
        np.testing.assert_array_equal(
            np.asarray(decoded[width], dtype=np.uint8), clips[width], err_msg=str(width)
        )


_PARSE_NAMES = """
import ast, json, sys
from pathlib import Path
import vbench2_beta_i2v
# the wheel's own get_type, taken from its camera_motion.py: importing that module needs the
# cotracker code the wheel does not ship (vb._ENV_CODE), the parser itself needs nothing
source = (Path(vbench2_beta_i2v.__file__).parent / "camera_motion.py").read_text()
tree = ast.parse(source)
func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_type")
scope = {}
exec(compile(ast.Module(body=[func], type_ignores=[]), "camera_motion.py", "exec"), scope)
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = scope["get_type"](name)
    except ValueError as exc:
        out[name] = "ValueError: " + str(exc)
print(json.dumps(out))
"""


def test_camera_motion_reads_the_motion_from_our_export_names(vbench_env, tmp_path):
    """The I2V export names each video after its caption's camera phrase; VBench-I2V's own parser
    (camera_motion.get_type, run in the env) reads the motion asked for from those names, and
    raises on a bare clip name, as it did on every name before."""
    import torch

    captions = [
        "a harbour, camera pans left",
        "a field, camera zooms out",
        "a room, camera static",
        "a red circle",
    ]
    videos = torch.zeros(4, 5, 16, 32, 3, dtype=torch.uint8)
    folder = export_vbench_i2v_custom(
        videos, videos[:, 0], captions, tmp_path / "x", ["camera_motion"], lossless=True
    )
    names = sorted(p.name for p in (folder / "videos").glob("*.mp4"))
    out = subprocess.run(
        [str(env_python(vbench_env)), "-P", "-c", _PARSE_NAMES, *names],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed == {
        "clip00000 camera pans left-0.mp4": "pan_left",
        "clip00001 camera zooms out-0.mp4": "zoom_out",
        "clip00002 camera static-0.mp4": "static",
        "clip00003-0.mp4": "ValueError: Not a recognized video name",
    }
    from benchmarks.official import vbench_eval as vb

    motions = {vb.CAMERA_MOTIONS[vb.camera_phrase(c)] for c in captions[:3]}
    assert motions == {"pan_left", "zoom_out", "static"}
