"""The pixel plug-ins through the harness: registered by the entry point, options validated with the
spec's one-paragraph errors before any compute, tokenizers built from files written here, and the
scorers fed the way harness/stages.py feeds them (decoded clips of a real benchmark suite)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from benchmarks.pixel.frames import NOISE_FLICKER, PSNR_CAP
from harness import plugins
from harness.spec import SpecError, resolve_run

sys.path.insert(0, str(Path(__file__).parents[2] / "ursa" / "tokenizers"))
from test_cosmos import clips, script_checkpoint  # noqa: E402 - the scripted Cosmos-contract modules

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
TASKS = ("i2v", "interpolation", "extrapolation")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> plugins.Benchmark:
    cls = plugins.BENCHMARKS.get("shapes")
    return cls(
        cls.Options.model_validate(
            {"task_size": 3, "world": {"frames": 5, "height": 32, "width": 32}}
        ),
        tmp_path_factory.mktemp("cache"),
    )


def run(**sections) -> object:
    return resolve_run(
        {"benchmark": {"name": "shapes"}, "score": {"which": ["flicker"]}, **sections}, "spec.yaml"
    )


def test_components_are_registered_with_their_metrics() -> None:
    assert {"cosmos", "precomputed"} <= set(plugins.VISUAL_TOKENIZERS.names())
    assert {"flicker", "frames"} <= set(plugins.SCORERS.names())
    info = plugins.metric_info("i2v.first_frame_psnr")
    assert info is not None and (info.low, info.high, info.higher_is_better) == (
        0.0,
        PSNR_CAP,
        True,
    )
    assert plugins.metric_info("temporal_flickering").high == 1.0


def test_spec_errors_name_the_key_and_every_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        run(tokenizer={"name": "cosmos", "path": str(tmp_path / "Cosmos-0.1-Tokenizer-DV4x8x8")})
    msg = str(err.value)
    assert msg.startswith(
        "spec.yaml: tokenizer.path: expected a Cosmos-Tokenizer DV checkpoint folder; missing"
    )
    assert (
        "encoder.jit" in msg
        and "decoder.jit" in msg
        and "huggingface-cli download" in msg
        and "\n" not in msg
    )
    with pytest.raises(
        SpecError,
        match=r"tokenizer.path: expected a precomputed-tokens folder.*precomputed.json, "
        r".*codebook.safetensors \(or codebook.npy\)",
    ):
        run(tokenizer={"name": "precomputed", "path": str(tmp_path)})
    folder = script_checkpoint(tmp_path / "Cosmos-0.1-Tokenizer-DV4x8x8")
    with pytest.raises(
        SpecError, match="temporal_compression is 8 in the options but 4 in the checkpoint folder"
    ):
        run(tokenizer={"name": "cosmos", "path": str(folder), "temporal_compression": 8})
    with pytest.raises(SpecError, match=r"unknown key 'score.options.frames.temporal_compression'"):
        run(score={"which": ["frames"], "options": {"frames": {"temporal_compression": 4}}})
    config = run(
        tokenizer={"name": "cosmos", "path": str(folder)},
        sample={"tasks": ["t2v", *TASKS]},
        score={"which": ["flicker", "frames"]},
    )
    assert config.tokenizer.name == "cosmos" and config.score.which == ["flicker", "frames"]


def test_cosmos_plugin_builds_the_tokenizer_from_its_options(tmp_path: Path, shapes) -> None:
    folder = script_checkpoint(tmp_path / "Cosmos-0.1-Tokenizer-DV4x8x8")
    cls = plugins.VISUAL_TOKENIZERS.get("cosmos")
    options = cls.Options.model_validate({"path": str(folder), "batch_size": 2})
    assert cls.vocab_size(options) == 64000
    tok = cls.build(options, shapes, tmp_path)
    ids = tok.encode(clips(2))
    assert ids.shape == (2, 2, 2, 2) and tok.decode(ids).shape == (2, 5, 16, 16, 3)


def test_scorers_on_a_real_suite_reach_ceiling_and_floor(shapes, tmp_path: Path) -> None:
    frames = plugins.SCORERS.get("frames")
    flicker = plugins.SCORERS.get("flicker")
    for task in TASKS:
        prompts = shapes.suite(task)
        real = shapes.real_videos(prompts)
        scorer = frames(frames.Options(), shapes, tmp_path)
        metrics, per_clip = scorer.evaluate(real, prompts, task, seed=0)
        (name,) = metrics
        assert metrics[name] == PSNR_CAP and per_clip[name] == [PSNR_CAP] * len(prompts)
        noisy = torch.randint(
            0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        )
        low = scorer.evaluate(noisy, prompts, task, seed=0)[0][name]
        assert (
            low < 12.0
        )  # uniform noise vs a real frame: MSE >= Var(uniform) = 5461, PSNR <= 10.8 dB
    assert frames(frames.Options(), shapes, tmp_path).evaluate(real, prompts, "t2v", 0) == ({}, {})
    metrics, per_clip = flicker(flicker.Options(), shapes, tmp_path).evaluate(
        noisy, prompts, "t2v", 0
    )
    assert (
        abs(metrics["temporal_flickering"] - NOISE_FLICKER) < 0.01
        and len(per_clip["temporal_flickering"]) == 3
    )
    still = real[:, :1].expand_as(real).contiguous()
    assert flicker(flicker.Options(), shapes, tmp_path).score(still, prompts, "t2v", 0) == {
        "temporal_flickering": 1.0
    }
