"""VBench / VBench-I2V normalisation + weighting, missing-resource errors, one real vbench run."""

import json
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

import benchmarks.official
from benchmarks.official.export import export_vbench_custom
from benchmarks.official.resources import MissingResourceError
from benchmarks.official.vbench_eval import (
    I2V_DIMENSIONS,
    VBENCH_DIMENSIONS,
    run_vbench,
    summarize,
    summarize_i2v,
)
from harness.env import MARKER

# Chosen normalised values n (raw = min + n * (max - min)), so the expected scores are simple sums.
NORM = {
    "subject_consistency": 0.5,
    "background_consistency": 0.5,
    "temporal_flickering": 1.0,
    "motion_smoothness": 0.0,
    "aesthetic_quality": 0.6,
    "imaging_quality": 0.4,
    "dynamic_degree": 1.0,
    "scene": 1.0,
    **{
        d: 0.5
        for d in (
            "object_class",
            "multiple_objects",
            "human_action",
            "color",
            "spatial_relationship",
            "appearance_style",
            "temporal_style",
            "overall_consistency",
        )
    },
}


def _write(path, norm, table):
    raw = {d: table[d][0] + n * (table[d][1] - table[d][0]) for d, n in norm.items()}
    path.write_text(
        json.dumps({d: [v, [{"video_path": "x.mp4", "video_results": v}]] for d, v in raw.items()})
    )
    return path


def test_vbench_total_hand_computed(tmp_path):
    s = summarize(_write(tmp_path / "r_eval_results.json", NORM, VBENCH_DIMENSIONS))
    # Quality: weights 1 except dynamic_degree 0.5 -> (0.5+0.5+1+0+0.6+0.4+0.5*1) / 6.5
    quality = 3.5 / 6.5
    semantic = (8 * 0.5 + 1.0) / 9  # scene raw 0.8222 = its max -> 1.0
    assert s["quality"] == pytest.approx(100 * quality, abs=1e-9)
    assert s["semantic"] == pytest.approx(100 * semantic, abs=1e-9)
    assert s["total"] == pytest.approx(100 * (4 * quality + semantic) / 5, abs=1e-9)
    assert s["complete"] and s["missing"] == []
    assert s["dimensions"]["imaging_quality"] == pytest.approx(40.0)
    assert s["official"]["total"] == pytest.approx(s["total"])


def test_vbench_missing_dimension_reported_with_official_figure(tmp_path):
    norm = {d: n for d, n in NORM.items() if d != "temporal_flickering"}
    s = summarize(_write(tmp_path / "r_eval_results.json", norm, VBENCH_DIMENSIONS))
    assert not s["complete"] and s["missing"] == ["temporal_flickering"]
    assert s["quality"] == pytest.approx(100 * 2.5 / 5.5)  # mean over the 6 dims present
    # Official script: raw 0 -> (0 - 0.6293) / (1 - 0.6293), still divided by all 6.5 weights.
    official_q = (2.5 + (0 - 0.6293) / (1 - 0.6293)) / 6.5
    assert s["official"]["quality"] == pytest.approx(100 * official_q)
    assert s["official"]["total"] == pytest.approx(100 * (4 * official_q + 5 / 9) / 5)
    only_quality = summarize(
        _write(tmp_path / "q_eval_results.json", {"temporal_flickering": 0.5}, VBENCH_DIMENSIONS)
    )
    assert only_quality["semantic"] is None and only_quality["total"] is None


def test_vbench_i2v_hand_computed(tmp_path):
    norm = {
        "camera_motion": 0.0,
        "i2v_subject": 1.0,
        "i2v_background": 0.5,
        "subject_consistency": 1.0,
        "background_consistency": 1.0,
        "motion_smoothness": 0.5,
        "dynamic_degree": 0.0,
        "aesthetic_quality": 0.5,
        "imaging_quality": 0.5,
    }
    s = summarize_i2v(_write(tmp_path / "i_eval_results.json", norm, I2V_DIMENSIONS))
    i2v = (0.1 * 0.0 + 1.0 + 0.5) / 2.1  # camera_motion weight 0.1
    quality = (1 + 1 + 0.5 + 0.5 * 0.0 + 0.5 + 0.5) / 5.5  # dynamic_degree weight 0.5
    assert s["i2v"] == pytest.approx(100 * i2v)
    assert s["quality"] == pytest.approx(100 * quality)
    assert s["total"] == pytest.approx(100 * (i2v + quality) / 2)


def test_summarize_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        summarize(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text(json.dumps({"not_a_dimension": [0.5, []]}))
    with pytest.raises(ValueError, match="unknown dimension"):
        summarize(tmp_path / "bad.json")


def test_run_vbench_lists_every_missing_file_before_running(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(MissingResourceError) as err:
        run_vbench(
            tmp_path / "videos",
            tmp_path / "out",
            "m",
            ["subject_consistency", "aesthetic_quality", "temporal_flickering"],
            env_path=tmp_path / "no-env",
        )
    message = str(err.value)
    for expected in (
        "no-env/ursa-env.json",
        "python -m harness env vbench",
        "cache/dino_model/facebookresearch_dino_main/",
        "cache/dino_model/dino_vitbase16_pretrain.pth",
        "cache/clip_model/ViT-L-14.pt",
        "cache/aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
        "videos/",
        "$VBENCH_CACHE_DIR",
    ):
        assert expected in message, expected
    assert len(err.value.missing) == 6
    assert not (tmp_path / "out").exists()


# A stand-in for the vbench package: evaluate() records where `vbench` was imported from and the
# worker's sys.path in place of per-video results.
_STUB_VBENCH = """
import json, os, sys

class VBench:
    def __init__(self, device, full_info, output):
        self.output = output

    def evaluate(self, videos_path, name, dimension_list, local, mode, prompt_list):
        row = {"video_path": __file__, "video_results": sys.path}
        with open(os.path.join(self.output, name + "_eval_results.json"), "w") as f:
            json.dump({d: [0.9, [row]] for d in dimension_list}, f)
"""


def test_worker_imports_the_vbench_package_not_a_sibling_module(tmp_path, monkeypatch):
    """run_vbench starts _vbench_worker.py with the env's python; its `import vbench` must find the
    env's package (a stub here), and this package's folder must stay off the worker's sys.path."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / MARKER).write_text("{}")
    (tmp_path / "stub" / "vbench").mkdir(parents=True)
    (tmp_path / "stub" / "vbench" / "__init__.py").write_text(_STUB_VBENCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
    (tmp_path / "videos").mkdir()
    result = run_vbench(
        tmp_path / "videos",
        tmp_path / "out",
        "stub",
        ["temporal_flickering"],
        mode="custom_input",
        env_path=env,
        timeout=120,
    )
    assert result == tmp_path / "out" / "stub_eval_results.json"
    score, rows = json.loads(result.read_text())["temporal_flickering"]
    assert score == 0.9 and rows[0]["video_path"] == str(
        tmp_path / "stub" / "vbench" / "__init__.py"
    )
    here = Path(benchmarks.official.__file__).parent
    assert not any(Path(p or ".").resolve() == here for p in rows[0]["video_results"])


@pytest.mark.slow
def test_real_vbench_temporal_flickering(tmp_path):
    """Builds (or reuses) the vbench env and runs vbench 0.1.5's temporal_flickering on CPU."""
    from harness.env import create_env

    env = create_env("vbench", progress=False)
    g = torch.Generator().manual_seed(0)
    static = torch.randint(0, 256, (1, 1, 64, 64, 3), generator=g, dtype=torch.uint8).expand(
        2, 16, 64, 64, 3
    )
    ramp = torch.linspace(0, 1, 16).view(1, 16, 1, 1, 1)  # slow brightness ramp: mild flicker
    moving = (static[:1].float() * (0.5 + 0.5 * ramp)).to(torch.uint8)
    noise = torch.randint(0, 256, (1, 16, 64, 64, 3), generator=g, dtype=torch.uint8)
    videos = torch.cat([static, moving, noise])
    folder = export_vbench_custom(videos, ["static", "static", "ramp", "noise"], tmp_path / "v")
    start = time.monotonic()
    result = run_vbench(
        folder,
        tmp_path / "out",
        "real",
        ["temporal_flickering"],
        mode="custom_input",
        prompt_file=folder / "prompts.json",
        env_path=env,
    )
    seconds = time.monotonic() - start
    score, rows = json.loads(result.read_text())["temporal_flickering"]
    per_video = {r["video_path"].rsplit("/", 1)[1]: r["video_results"] for r in rows}
    # Recompute vbench's formula, (255 - mean_t mean|f_t+1 - f_t|) / 255, from our own decode.
    # cv2 and imageio-ffmpeg convert yuv->rgb differently: allow 0.01 (2.5 grey levels).
    for name, value in per_video.items():
        frames = np.stack(imageio.mimread(folder / name)).astype(np.float32)
        expected = (255.0 - np.abs(np.diff(frames, axis=0)).mean()) / 255.0
        assert value == pytest.approx(expected, abs=0.01), name
    assert per_video["static-0.mp4"] > 0.999 > per_video["ramp-0.mp4"] > per_video["noise-0.mp4"]
    assert score == pytest.approx(np.mean(list(per_video.values())))
    s = summarize(result)
    assert s["dimensions"]["temporal_flickering"] == pytest.approx(100 * (score - 0.6293) / 0.3707)
    print(
        f"\nvbench temporal_flickering: score={score:.6f} per_video={per_video} "
        f"normalised={s['dimensions']['temporal_flickering']:.3f} run_seconds={seconds:.1f}"
    )
