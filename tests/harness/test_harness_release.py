"""model.init_from {format: release}: a synthetic release folder (the authors' exact layout,
shapes-sized vocabularies) is sampled as it is and fine-tuned for 5 steps through the harness."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from harness_fixtures import WORLD, seeded_runs_root, tiny_spec
from safetensors.torch import save_file

from harness.runner import run_spec
from harness.spec import SpecError
from harness.specfile import load_spec

sys.path.insert(0, str(Path(__file__).parents[1] / "ursa"))
from test_release_helpers import TINY, fsq_codebook, make_release  # noqa: E402


def shapes_release(root: Path, runs_root: Path) -> Path:
    """A release whose text vocabulary is the shapes caption vocabulary (BOV its last id) and
    whose codebook is the fitted shapes tokenizer's (K = 65)."""
    from benchmarks.shapes.text import CaptionTokenizer
    from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
    from benchmarks.shapes.world import WorldConfig

    tok = load_or_fit_tokenizer(
        runs_root / "_cache" / "shapes", WorldConfig(**WORLD), codebook_size=65, seed=0
    )
    V = CaptionTokenizer().vocab_size
    cfg = dict(
        TINY,
        lm_vocab_size=V,
        lm_head_size=65,
        vocab_size=V + 65,
        bov_token_id=V - 1,
        pad_token_id=0,
    )
    return make_release(root, cfg, codebook=tok.codebook_embeddings().float())


def test_release_sampled_as_is_and_fine_tuned(tmp_path: Path, tmp_path_factory) -> None:
    runs = seeded_runs_root(tmp_path, tmp_path_factory)
    release = shapes_release(tmp_path / "URSA-tiny", runs)
    data = yaml.safe_load(
        tiny_spec(
            tmp_path / "r.yaml",
            name="rel",
            steps=5,
            checkpoint_every=5,
            grid={"train.steps": [0, 5]},
        ).read_text()
    )
    data["base"]["model"] = {"init_from": {"format": "release", "path": str(release)}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    out = {
        r.arm: r
        for r in run_spec(load_spec(tmp_path / "r.yaml"), "default", runs, progress=False).results
    }
    assert all(r.done for r in out.values()), [r.error for r in out.values()]
    evaluated, tuned = out["train.steps=0"], out["train.steps=5"]
    assert 0 <= evaluated.metrics["alignment"] <= 1 and 0 <= tuned.metrics["alignment"] <= 1
    train_dir = runs / "rel" / "default" / tuned.run_id / "stages" / "train"
    saved = json.loads((train_dir / "model" / "config.json").read_text())
    assert (
        saved["rope_layout"] == "ursa_release"
        and saved["head_shift"]
        and saved["bov_token_id"] == data_v(release)
    )
    from safetensors.torch import load_file

    from ursa.release import load_transformer

    start = load_transformer(release).state_dict()
    after = load_file(str(train_dir / "model" / "model.safetensors"))
    assert set(after) == set(start) and not torch.equal(after["head.weight"], start["head.weight"])
    done = json.loads(
        (runs / "rel" / "default" / evaluated.run_id / "stages" / "train" / "done.json").read_text()
    )
    assert done["steps"] == 0 and Path(done["model"]) == release.resolve()


def data_v(release: Path) -> int:
    return json.loads((release / "transformer" / "config.json").read_text())["bov_token_id"]


def _bad_spec(tmp_path: Path, edit) -> Path:
    release = make_release(tmp_path / "rel")
    edit(release)
    data = yaml.safe_load(tiny_spec(tmp_path / "r.yaml", name="bad", steps=0).read_text())
    data["base"]["model"] = {"init_from": {"format": "release", "path": str(release)}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "r.yaml"


def test_release_missing_files_exit_2_one_paragraph(tmp_path: Path) -> None:
    import subprocess

    def drop(r: Path) -> None:
        (r / "scheduler" / "scheduler_model.pth").unlink()
        (r / "transformer" / "diffusion_pytorch_model.safetensors").unlink()

    spec = _bad_spec(tmp_path, drop)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "2 missing: scheduler/scheduler_model.pth (the codebook" in proc.stderr
    assert "transformer/diffusion_pytorch_model.safetensors (the denoiser's weights" in proc.stderr


@pytest.mark.parametrize(
    "edit,path,expected",
    [
        (
            lambda r: (r / "transformer" / "config.json").write_text(
                json.dumps(dict(TINY, lm_head_size=30, vocab_size=70))
            ),
            None,
            "lm_head_size 30 .* to equal the tokenizer's K \\(65",
        ),
        (
            lambda r: None,
            {"kind": "mixture"},
            "no path settings with model.init_from.format release",
        ),
    ],
)
def test_release_spec_errors(tmp_path: Path, edit, path, expected) -> None:
    from harness.expand import expand
    from harness.spec import SpecError

    spec = _bad_spec(tmp_path, edit)
    if path:
        data = yaml.safe_load(spec.read_text())
        data["base"]["path"] = path
        spec.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=expected):
        expand(load_spec(spec), "default")


def _user_folders(tmp_path: Path) -> dict[str, str]:
    """Stand-ins for the example specs' /path/to/... folders: a synthetic release whose head is
    the FSQ K (64000) with tokenizer/ and vae/ (the golden tiny FSQ video tokenizer) folders, and a
    video folder with a manifest."""
    from test_release_helpers import load_golden, make_tokenizer

    release = tmp_path / "URSA"
    make_release(release, dict(TINY, lm_head_size=64000, vocab_size=40 + 64000))
    make_tokenizer(release / "tokenizer")
    config, weights, _ = load_golden(
        Path(__file__).parents[1] / "ursa" / "tokenizers" / "test_cosmos3d_golden.safetensors"
    )
    (release / "vae").mkdir()
    (release / "vae" / "config.json").write_text(json.dumps(config))
    save_file(weights, str(release / "vae" / "diffusion_pytorch_model.safetensors"))
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).write_bytes(
            b"\x00" * 64
        )  # validation checks presence and size, decoding happens at run time
    (videos / "captions.csv").write_text(
        "path,caption,split\na.mp4,a red circle,train\nb.mp4,a blue square,eval\n"
    )
    return {
        "/path/to/URSA-1.7B-FSQ320": str(release),
        "/path/to/URSA-0.6B-FSQ320": str(release),
        "/path/to/videos": str(videos),
    }


@pytest.mark.parametrize("name", ["release_sampler", "release_finetune"])
def test_example_specs_validate(tmp_path: Path, name: str) -> None:
    from harness.expand import expand

    text = (Path(__file__).parents[2] / "ablations" / "examples" / f"{name}.yaml").read_text()
    for user, ours in _user_folders(tmp_path).items():
        text = text.replace(user, ours)
    assert "/path/to/" not in text.split("base:", 1)[1]
    (tmp_path / f"{name}.yaml").write_text(text)
    runs = expand(load_spec(tmp_path / f"{name}.yaml"), "default")
    assert len(runs) == {"release_sampler": 48, "release_finetune": 3}[name]
    assert all(r.config.model.init_format == "release" for r in runs)
    assert {(r.config.tokenizer.name, r.config.text_tokenizer.name) for r in runs} == {
        ("release_fsq", "release_text")
    }
    if (
        name == "release_sampler"
    ):  # the compat axis: the authors' sampler (bugs 2 and 6) vs the fixed one
        assert {
            (r.config.sample.compat_condition_drift, r.config.sample.compat_still_first_step)
            for r in runs
        } == {(False, False), (True, True)}
        assert len({r.config.text_tokenizer.options()["negative_prompt"] for r in runs}) == 2


def test_negative_prompt_is_the_unconditional_branch(tmp_path: Path) -> None:
    """A text tokenizer with `uncond` (release_text) feeds the sampler's unconditional branch; its
    default "" gives bit-identical samples to the empty fully masked text used before (and still
    used by tokenizers without `uncond`); a negative prompt changes them."""
    from test_release_helpers import make_tokenizer

    from harness.data import Data
    from harness.plugins import TEXT_TOKENIZERS
    from harness.spec import SampleConfig
    from harness.tasks import TaskContext
    from ursa.release import build_release_path, load_transformer
    from ursa.sample import EulerSampler, text_to_video
    from ursa.tokenizers.text import HFTextTokenizer

    release = make_release(tmp_path / "rel")
    make_tokenizer(release / "tokenizer")
    model, path = load_transformer(release), build_release_path(release)
    plugin, prompts = (
        TEXT_TOKENIZERS.get("release_text"),
        [type("P", (), {"caption": c}) for c in ("a red circle", "up")],
    )
    config = SampleConfig(steps=4, cfg_scale=5.0)

    def sample(text, **override) -> tuple[torch.Tensor, dict]:
        ctx = TaskContext(
            EulerSampler(model, path, config),
            Data(None, None, text, "-"),
            config,
            torch.Generator().manual_seed(0),
        )
        ids, mask, kw = ctx.text(prompts)
        kw.update(override)
        return text_to_video(ctx.sampler, ids, mask, (2, 2, 2), **kw), kw

    def release_text(negative: str):
        return plugin.build(
            plugin.Options.model_validate({"path": str(release), "negative_prompt": negative}),
            None,
            tmp_path,
        )

    empty = release_text("")
    default, kw = sample(empty)
    assert torch.equal(kw["uncond_ids"], empty.uncond(2)[0]) and not kw["uncond_mask"].any()
    before, _ = sample(
        empty,
        uncond_ids=torch.zeros(2, 1, dtype=torch.long),
        uncond_mask=torch.zeros(2, 1, dtype=torch.bool),
    )
    assert torch.equal(default, before)  # "" is the empty prompt: 320 pads either way
    negative, kw = sample(release_text("worst quality,"))
    assert kw["uncond_mask"].sum().item() == 4 and not torch.equal(negative, default)
    hf = HFTextTokenizer(release / "tokenizer")  # no uncond: the empty prompt, as before
    _, kw = sample(hf)
    assert torch.equal(kw["uncond_ids"], torch.zeros(2, 1, dtype=torch.long)) and kw[
        "uncond_mask"
    ].shape == (2, 1)


def test_release_tokenizers_through_the_harness(tmp_path: Path) -> None:
    """A run on the release's own plug-ins: release_fsq (the golden tiny FSQ vae/), release_text with a
    negative prompt under CFG, the release model with the FSQ head; t2v and i2v sampled and scored."""
    from test_release_helpers import load_golden, make_tokenizer

    release = make_release(
        tmp_path / "URSA",
        dict(TINY, lm_head_size=64000, vocab_size=40 + 64000),
        codebook=fsq_codebook((8, 8, 8, 5, 5, 5)),
    )
    make_tokenizer(release / "tokenizer")
    config, weights, _ = load_golden(
        Path(__file__).parents[1] / "ursa" / "tokenizers" / "test_cosmos3d_golden.safetensors"
    )
    (release / "vae").mkdir()
    (release / "vae" / "config.json").write_text(json.dumps(config))
    save_file(weights, str(release / "vae" / "diffusion_pytorch_model.safetensors"))
    data = yaml.safe_load(tiny_spec(tmp_path / "r.yaml", name="relplug", steps=0).read_text())
    data["base"].update(
        benchmark={
            "name": "shapes",
            "world": dict(WORLD, frames=5),
            "eval_size": 2,
            "task_size": 2,
            "train_size": 4,
        },
        tokenizer={"name": "release_fsq", "path": str(release)},
        text_tokenizer={
            "name": "release_text",
            "path": str(release),
            "negative_prompt": "worst quality,",
        },
        model={"init_from": {"format": "release", "path": str(release)}},
        sample={"steps": 2, "batch_size": 2, "cfg_scale": 3.0, "tasks": ["t2v", "i2v"]},
        score={"which": ["flicker", "frames"]},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    out = {
        r.arm: r
        for r in run_spec(
            load_spec(tmp_path / "r.yaml"), "default", tmp_path / "runs", progress=False
        ).results
    }
    # sampled through the plug-ins; real clips and random ids (held i2v frame mapped to its latent) through release_fsq
    for arm in ("base", "ref:reconstruction", "ref:random"):
        assert out[arm].done, out[arm].error
        assert (
            0 < out[arm].metrics["temporal_flickering"] <= 1
            and 0 < out[arm].metrics["i2v.first_frame_psnr"] < 100
        )


def test_release_samples_with_its_scheduler_shift_unless_the_spec_sets_one(tmp_path: Path) -> None:
    """sample.shift left out: the release's scheduler_config.json shift (2.5 here, a
    value no default has); set in the spec: the spec's. cfg_below_one is refused for a release (the
    authors never guide below 1)."""
    from harness.expand import expand

    cfg = dict(TINY, lm_head_size=65, vocab_size=40 + 65)  # K of the shapes tokenizer
    release = make_release(tmp_path / "rel", cfg, shift=2.5)

    def runs(sample: dict) -> list:
        data = yaml.safe_load(tiny_spec(tmp_path / "r.yaml", name="shift", steps=0).read_text())
        data["base"]["model"] = {"init_from": {"format": "release", "path": str(release)}}
        data["base"]["sample"].update(sample)
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
        return expand(load_spec(tmp_path / "r.yaml"))

    assert [(r.config.sample.shift, r.config.train.shift) for r in runs({})] == [(2.5, 2.5)]
    assert [r.config.sample.shift for r in runs({"shift": 1.0})] == [1.0]
    with pytest.raises(SpecError, match="cfg_below_one to be false with model.init_from.format"):
        runs({"cfg_scale": 0.5, "cfg_below_one": True})
