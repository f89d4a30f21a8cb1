"""Stage-level identity: arms that share a trained model train it once, with numbers equal to
separate full runs; evaluation-only runs; each setting declared once (spec == ursa schema)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from harness_fixtures import seeded_runs_root, tiny_spec

from harness.runner import run_spec
from harness.spec import RunConfig, SampleConfig
from harness.specfile import load_spec
from ursa.sample import SamplerConfig
from ursa.train_config import TrainConfig


def _results(outcome) -> dict[str, dict]:
    return {r.arm: r for r in outcome.results if r.reference is None}


def _metrics(result) -> dict[str, float]:
    return result.metrics


def test_sampler_sweep_trains_one_model_and_matches_separate_runs(
    tmp_path: Path, tmp_path_factory
) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(tiny_spec(tmp_path / "sweep.yaml", grid={"sample.steps": [1, 2, 3]}))
    out = _results(run_spec(spec, "default", root, progress=False))
    assert all(r.done for r in out.values()), [r.error for r in out.values()]
    trained = [arm for arm, r in out.items() if "train" in r.timings]
    assert len(trained) == 1, trained  # exactly one training stage executed for the three arms
    assert len(list((root / "_stages" / "train").iterdir())) == 1
    assert len({r.stage_ids["train"] for r in out.values()}) == 1
    assert len({r.stage_ids["sample"] for r in out.values()}) == 3
    for steps in (1, 2, 3):  # each arm equals a separate full run of that setting
        alone_root = seeded_runs_root(tmp_path / f"alone{steps}", tmp_path_factory)
        alone = load_spec(tiny_spec(tmp_path / f"alone{steps}.yaml", name=f"alone{steps}"))
        alone = alone.model_copy(
            update={
                "base": alone.base.model_copy(
                    update={"sample": alone.base.sample.model_copy(update={"steps": steps})}
                )
            }
        )
        (single,) = _results(run_spec(alone, "default", alone_root, progress=False)).values()
        assert _metrics(single) == _metrics(out[f"sample.steps={steps}"]), steps


def test_parallel_workers_share_a_training_stage(tmp_path: Path, tmp_path_factory) -> None:
    """Local subprocesses, three at a time: waves make one worker train, the others reuse it."""
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(
        tiny_spec(
            tmp_path / "par.yaml",
            name="par",
            grid={"sample.steps": [1, 2]},
            executor={"kind": "local", "max_parallel": 3, "threads": 1},
        )
    )
    out = _results(run_spec(spec, "default", root, progress=False))
    assert all(r.done for r in out.values()), [r.error for r in out.values()]
    assert sum("train" in r.timings for r in out.values()) == 1
    losses = {
        (Path(r_dir) / "stages" / "train" / "losses.csv").read_text()
        for r_dir in (root / "par" / "default").glob("*")
        if (Path(r_dir) / "stages" / "train").exists()
    }
    assert len(losses) == 1  # every arm links to the same trained model


def test_evaluation_only_run_samples_a_saved_model_without_training(
    tmp_path: Path, tmp_path_factory
) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    trained = load_spec(tiny_spec(tmp_path / "t.yaml", name="t"))
    (run,) = _results(run_spec(trained, "default", root, progress=False)).values()
    model_dir = root / "t" / "default" / run.run_id / "stages" / "train" / "model"
    data = yaml.safe_load((tmp_path / "t.yaml").read_text())
    data["name"] = "evalonly"
    data["base"]["model"]["init_from"] = str(model_dir)
    data["base"]["train"]["steps"] = 0
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(data))
    (evaluated,) = _results(
        run_spec(load_spec(tmp_path / "e.yaml"), "default", root, progress=False)
    ).values()
    assert evaluated.done, evaluated.error
    assert "train" in evaluated.timings and evaluated.timings["train"] < 5  # recorded, not trained
    train_dir = root / "evalonly" / "default" / evaluated.run_id / "stages" / "train"
    assert not (train_dir / "model").exists() and not (train_dir / "checkpoint").exists()
    assert json.loads((train_dir / "done.json").read_text())["steps"] == 0
    same = {k: v for k, v in run.metrics.items() if k != "train_loss"}
    assert (
        evaluated.metrics == same
    )  # same weights, same sampler seed -> the same samples and scores


def test_each_setting_is_declared_once() -> None:
    """The spec's train section is ursa's TrainConfig; its sample section extends ursa's
    SamplerConfig and hands every one of its fields to the sampler."""
    assert RunConfig.model_fields["train"].annotation is TrainConfig
    assert issubclass(SampleConfig, SamplerConfig)
    changed = {
        "steps": 7,
        "shift": 2.5,
        "shift_rule": "resolution",
        "cfg_scale": 3.0,
        "cfg_trunc": 0.5,
        "argmax_last": True,
        "compat_condition_drift": True,
        "compat_still_first_step": True,
        "cfg_below_one": True,
        "cond_noise_scale": 0.5,
        "precision": "release",
    }
    assert set(changed) == set(SamplerConfig.model_fields), "a new sampler field needs a value here"
    defaults = SamplerConfig()
    assert all(getattr(defaults, k) != v for k, v in changed.items())
    assert SampleConfig(**changed, batch_size=3).sampler_config() == SamplerConfig(**changed)
    harness_only = set(SampleConfig.model_fields) - set(SamplerConfig.model_fields)
    assert harness_only == {"batch_size", "tasks", "context_frames", "seed"}


def test_a_failed_shared_training_fails_its_followers_without_retraining(
    tmp_path: Path, tmp_path_factory
) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    data = yaml.safe_load(
        tiny_spec(tmp_path / "nan.yaml", name="nan", grid={"sample.steps": [1, 2]}).read_text()
    )
    data["base"]["train"].update(lr=1e30, warmup_steps=0)  # the loss overflows: NonFiniteLossError
    (tmp_path / "nan.yaml").write_text(yaml.safe_dump(data))
    out = _results(run_spec(load_spec(tmp_path / "nan.yaml"), "default", root, progress=False))
    first, second = out["sample.steps=1"], out["sample.steps=2"]
    assert first.state == second.state == "failed"
    assert "NonFiniteLossError" in first.error["message"]
    assert f"shares its stages with run {first.run_id}" in second.error["message"]
    assert "NonFiniteLossError" in second.error["message"] and "train" not in second.timings


def test_learning_curve_points_and_denoising_diagnostic(tmp_path: Path, tmp_path_factory) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    data = yaml.safe_load(tiny_spec(tmp_path / "c.yaml", name="curve", steps=4).read_text())
    data["base"]["train"]["snapshots"] = [0.5, 1.0]
    data["base"]["score"]["denoising_bins"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (run,) = _results(
        run_spec(load_spec(tmp_path / "c.yaml"), "default", root, progress=False)
    ).values()
    assert run.done, run.error
    assert sorted(run.curve, key=int) == ["2", "4"]
    final = {k: v for k, v in run.metrics.items() if k != "train_loss"}
    assert run.curve["4"] == final  # the last curve point is the run's result
    assert (
        set(run.curve["2"]) == set(final)
        and "denoise_ce@t=0.25" in final
        and "denoise_ce@t=0.75" in final
    )
    assert (
        abs(final["denoise_ce"] - (final["denoise_ce@t=0.25"] + final["denoise_ce@t=0.75"]) / 2)
        < 1e-9
    )
    rdir = root / "curve" / "default" / run.run_id
    clips = json.loads((rdir / "stages" / "score" / "clips.json").read_text())
    assert (
        len(clips["alignment"]) == 4
        and abs(sum(clips["alignment"]) / 4 - final["alignment"]) < 1e-9
    )
