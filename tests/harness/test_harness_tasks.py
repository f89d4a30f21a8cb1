"""Every sampling task (t2v, t2i, i2v, interpolation, extrapolation, long) through the stages on a tiny config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from harness_fixtures import seeded_runs_root, tiny_spec
from safetensors.torch import load_file

from benchmarks.shapes import real_videos
from harness.data import data_for
from harness.runner import run_spec
from harness.spec import RunConfig, SpecError
from harness.specfile import load_spec
from harness.store import load_results, read_json
from harness.tasks import long_windows

TASKS = ["t2v", "t2i", "i2v", "interpolation", "extrapolation", "long"]
TASK_METRICS = {
    "i2v": ["first_frame_fidelity", "identity_persistence"],
    "interpolation": ["endpoint_match", "identity_persistence"],
    "extrapolation": ["continuation_consistency"],
    "long": ["long_alignment_first", "long_alignment_last", "long_drift"],
}


def _spec(path: Path, sample: dict, score: dict | None = None) -> Path:
    """tiny_spec (2 train steps, 2 sample steps) with `sample` / `score` merged into its base."""
    data = yaml.safe_load(tiny_spec(path, steps=2).read_text())
    data["base"]["sample"].update(sample)
    data["base"]["score"].update(score or {})
    path.write_text(yaml.safe_dump(data))
    return path


def test_long_windows_cover_the_clip() -> None:
    assert long_windows(12, 4, 2) == 5  # 4 + 4 * 2 = 12 exactly
    assert long_windows(12, 4, 1) == 4  # 4 + 3 * 3 = 13 >= 12 (cut to 12)
    assert long_windows(4, 4, 3) == 1
    with pytest.raises(ValueError, match="context_frames"):
        long_windows(12, 4, 4)


def test_long_context_must_be_shorter_than_the_window(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="context_frames"):  # the tiny world's clips have 4 frames
        load_spec(_spec(tmp_path / "s.yaml", {"tasks": ["long"], "context_frames": 4}))


def test_every_task_through_the_stages(tmp_path: Path, tmp_path_factory) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(
        _spec(
            tmp_path / "s.yaml",
            {"tasks": TASKS, "context_frames": 1},
            {"which": ["alignment", "quality", "tasks"]},
        )
    )
    outcome = run_spec(spec, "default", root, progress=False)
    assert not outcome.failed, [r.error for r in outcome.failed]
    df = load_results(root, spec.name, "default")
    base = df[df["arm"] == "base"].iloc[0]
    rdir = Path(base["run_dir"])
    cfg = RunConfig.model_validate(read_json(rdir / "config.json")["config"])
    data = data_for(cfg, root)
    videos = load_file(rdir / "stages" / "sample" / "samples.safetensors")
    assert sorted(videos) == sorted(TASKS) and base["state"] == "done"

    world = data.benchmark.world
    for task in TASKS:
        prompts = data.benchmark.suite(task)
        frames = {"t2i": 1, "long": 3 * world.frames}.get(
            task, world.frames
        )  # long suite: LONG_WINDOWS clips
        assert tuple(videos[task].shape) == (len(prompts), frames, world.height, world.width, 3), (
            task
        )
        assert (rdir / "stages" / "sample" / f"strip_{task}.png").is_file()
        held = list(prompts[0].condition_frames)
        if held:  # condition frames are exactly the tokenised real frames (decode(encode(real)))
            given = data.tokenizer.decode(data.tokenizer.encode(real_videos(prompts)))
            assert torch.equal(videos[task][:, held], given[:, held]), (
                f"{task}: condition frames {held} not held"
            )

    metrics = {
        k.removeprefix("metric."): float(v) for k, v in base.items() if k.startswith("metric.")
    }
    for task, names in TASK_METRICS.items():
        for name in names:
            value = metrics[f"{task}.{name}"]
            low = (
                -1.0 if name == "long_drift" else 0.0
            )  # drift = first - last alignment, in [-1, 1]
            assert low <= value <= 1.0, (task, name, value)
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k.endswith("alignment")), metrics
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0

    # held frames score like the reconstruction reference (same tokenised frames); real is the ceiling
    refs = {a: r for a, r in df.set_index("arm").iterrows() if str(a).startswith("ref:")}
    for key in ("i2v.first_frame_fidelity", "interpolation.endpoint_match"):
        assert metrics[key] == pytest.approx(
            refs["ref:reconstruction"][f"metric.{key}"], abs=1e-12
        ), key
        assert refs["ref:real"][f"metric.{key}"] == 1.0
    assert refs["ref:real"]["metric.long.long_drift"] == 0.0


def test_extrapolation_gives_the_latent_frames_of_its_pixel_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prompt's condition frames are pixel frames: with 4x temporal compression (causal first frame),
    5 given pixel frames are 2 latent frames. The sampler call is recorded, not run."""
    from types import SimpleNamespace

    import ursa.sample as S
    from harness.tasks import TaskContext, extrapolation

    class Compressing:  # (T - 1) / 4 + 1 latent frames of 8x8 pixels
        def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
            return (t - 1) // 4 + 1, h // 8, w // 8

        def encode(self, video: torch.Tensor) -> torch.Tensor:
            return torch.zeros(
                video.shape[0], *self.latent_shape(*video.shape[1:4]), dtype=torch.long
            )

    bench = SimpleNamespace(
        real_videos=lambda ps: torch.zeros(len(ps), 17, 32, 32, 3, dtype=torch.uint8),
        condition_ids=lambda ps, tok, frames: tok.encode(
            torch.zeros(len(ps), len(frames), 32, 32, 3, dtype=torch.uint8)
        ),
    )

    def text(caps: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(len(caps), 3, dtype=torch.long), torch.ones(
            len(caps), 3, dtype=torch.bool
        )

    data = SimpleNamespace(tokenizer=Compressing(), benchmark=bench, text=text)
    seen = {}
    monkeypatch.setattr(
        S,
        "extrapolate",
        lambda sampler, t, m, given, length, **kw: seen.update(given=given, length=length),
    )
    ctx = TaskContext(
        sampler=None, data=data, config=SimpleNamespace(guided=False), generator=torch.Generator()
    )
    prompt = SimpleNamespace(caption="a", task="extrapolation", condition_frames=tuple(range(5)))
    extrapolation(ctx, [prompt])
    assert seen["given"].shape == (1, 2, 4, 4) and seen["length"] == 5
