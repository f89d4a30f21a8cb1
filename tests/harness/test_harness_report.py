"""harness.report / harness.tables: CI math, report files, every arm present, failed runs shown."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import tables
from harness.records import RunResult, RunState
from harness.report import render_report
from harness.specfile import parse_spec
from harness.store import write_manifest, write_result
from ursa.io import atomic_write_bytes, atomic_write_json

BASE = {
    "benchmark": {"name": "shapes"},
    "score": {"which": ["alignment"]},
}  # every run config names them
SPEC = {
    "name": "timestep_shift",
    "description": "Shift ablation (test fixture).",
    "base": BASE,
    "grid": {"train.shift": [1.0, 3.0], "train.shift_rule": ["fixed"]},
    "seeds": [0, 1, 2],
}
A1, A3 = "train.shift=1, train.shift_rule=fixed", "train.shift=3, train.shift_rule=fixed"
# arm -> per-seed (state, alignment, train_loss); NaN marks a failed run
RUNS = {
    A1: [("done", 0.5, 2.0), ("done", 0.6, 1.9), ("done", 0.7, 1.8)],
    A3: [("done", 0.8, 1.7), ("done", 0.9, 1.6), ("failed", math.nan, math.nan)],
    "ref:real": [("done", 0.95, math.nan)],
    "ref:random": [("done", 0.05, math.nan)],
}


def write_runs(
    runs_root: Path,
    runs: dict = RUNS,
    spec: str = "timestep_shift",
    profile: str = "smoke",
    first_seed: int = 0,
) -> list[str]:
    """The harness results contract, written through harness.store: config.json, result.json,
    losses.csv, a frame strip per trained run, and the manifest (seeds from `first_seed` on)."""
    ids = []
    for a, (arm, seeds) in enumerate(runs.items()):
        for seed, (state, align, loss) in enumerate(seeds, start=first_seed):
            rid = f"{a:02d}{seed:02d}" + "ab" * 6
            rdir = runs_root / spec / profile / rid
            params = (
                {} if "=" not in arm else {k: v for k, v in (p.split("=") for p in arm.split(", "))}
            )
            params = {k: float(v) if k == "train.shift" else v for k, v in params.items()}
            atomic_write_json(
                rdir / "config.json",
                {
                    "run": {"run_id": rid, "arm": arm, "seed": seed, "params": params},
                    "config": {"train": {"seed": seed}},
                    "code": {"package": "0.1", "commit": "c0ffee" * 4, "dirty": False},
                    "data": "f1f2f3f4",
                },
            )
            metrics = (
                {}
                if state != "done"
                else {"alignment": align, **({} if math.isnan(loss) else {"train_loss": loss})}
            )
            error = (
                {"message": "RuntimeError: boom", "traceback": ""} if state == "failed" else None
            )
            write_result(
                runs_root,
                rdir,
                RunResult(
                    run_id=rid,
                    spec=spec,
                    profile=profile,
                    arm=arm,
                    seed=seed,
                    state=RunState(state),
                    metrics=metrics,
                    params=params,
                    error=error,
                    reference=arm[len("ref:") :] if arm.startswith("ref:") else None,
                ),
            )
            if not arm.startswith("ref:") and state == "done":
                steps = np.arange(0, 40)
                frame = pd.DataFrame({"step": steps, "loss": loss + 3.0 * np.exp(-steps / 10)})
                atomic_write_bytes(
                    rdir / "stages" / "train" / "losses.csv", frame.to_csv(index=False).encode()
                )
                (rdir / "stages" / "sample").mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((16, 64, 3), 40 * a, np.uint8)).save(
                    rdir / "stages" / "sample" / "strip_t2v.png"
                )
            ids.append(rid)
    write_manifest(runs_root, spec, profile, ids, "<memory>")
    return ids


def test_mean_interval_is_a_seed_level_t_interval_inside_the_metric_range() -> None:
    # values 0.5, 0.6, 0.7: sd 0.1, se 0.1 / sqrt(3), t(0.975, 2) = 4.303 -> 0.6 +- 0.2484
    e = tables.mean_interval([0.5, 0.6, 0.7])
    assert e.seeds == 3 and e.mean == pytest.approx(0.6, abs=1e-12) and e.df == 2
    assert e.low == pytest.approx(0.6 - 0.24843, abs=1e-4)
    assert e.high == pytest.approx(0.6 + 0.24843, abs=1e-4)
    assert tables.mean_interval([0.9, 0.95, 1.0], (0.0, 1.0)).high == 1.0  # clipped to the range
    # n = 1: mean, no interval; NaN values are dropped
    e = tables.mean_interval([0.4, math.nan])
    assert (e.mean, e.seeds) == (0.4, 1) and math.isnan(e.low) and e.fmt(4) == "0.4"
    assert math.isnan(tables.mean_interval([]).mean)


def test_summarise_orders_arms_and_skips_failed_runs(tmp_path: Path) -> None:
    from harness.store import load_results

    write_runs(tmp_path)
    summary = tables.summarise(load_results(tmp_path, "timestep_shift", "smoke"))
    assert list(summary["arm"]) == [A1, A3, "ref:real", "ref:random"]
    shift3 = summary.set_index("arm").loc[A3]
    assert shift3["runs"] == "2/3" and shift3["failed"] == 1 and shift3["alignment.n"] == 2
    assert shift3["alignment.mean"] == pytest.approx(0.85, abs=1e-12)
    assert summary.set_index("arm").loc["ref:random", "role"].startswith("floor")
    assert summary.set_index("arm").loc["ref:real", "role"].startswith("ceiling")


def test_report_files_exist_and_contain_every_arm(tmp_path: Path) -> None:
    write_runs(tmp_path / "runs")
    spec = parse_spec(SPEC)
    md = render_report(spec, tmp_path / "runs", "smoke", tmp_path / "reports" / "timestep_shift")
    out = md.parent
    for name in (
        "report.md",
        "report.html",
        "results.csv",
        "results.parquet",
        "summary.csv",
        "plots/metric_vs_param.png",
        "plots/loss_curves.png",
    ):
        assert (out / name).is_file(), name
    text, page = md.read_text(), (out / "report.html").read_text()
    for arm in RUNS:
        assert arm in text and arm in page, arm
    assert "failed" in text and "RuntimeError: boom" in text
    assert "0.6 [0.3516, 0.8484]" in text  # shift=1: seed-level t (see the interval test)
    assert (
        "81.2" in text and "paper, full scale" in text
    )  # the paper's shift-3 figure, in its own table
    summary = pd.read_csv(out / "summary.csv").set_index("arm")
    assert not [
        c for c in summary.columns if "paper" in c
    ]  # never a column of the measured results
    assert "c0ffee" in text and "f1f2f3f4" in text  # code version and data fingerprint per run
    assert (
        "<img" in page and "src='plots/" not in page and page.count("data:image/png;base64,") >= 4
    )
    assert len(pd.read_csv(out / "results.csv")) == sum(len(v) for v in RUNS.values())
    assert len(list((out / "strips").glob("*.png"))) == 2  # one strip per trained arm


def test_report_shows_the_replicate_agreement_when_a_replicate_exists(tmp_path: Path) -> None:
    spec = parse_spec({**SPEC, "report": {"headline": "alignment", "baseline": "train.shift=1"}})
    write_runs(tmp_path / "runs")
    out = tmp_path / "reports"
    text = render_report(spec, tmp_path / "runs", "smoke", out).read_text()
    assert "Primary endpoint" in text and "Replicate on fresh seeds" not in text
    write_runs(tmp_path / "runs", spec="timestep_shift.replicate", first_seed=11)
    text = render_report(spec, tmp_path / "runs", "smoke", out).read_text()
    assert "Replicate on fresh seeds 11, 12, 13: 1 of 1 claims agree" in text
    header = "| claim | original | replicate | same sign | intervals overlap | agrees | pooled |"
    assert header in text


def test_paper_arm_patterns_match_subsets_of_arm_parts() -> None:
    assert tables.arm_matches("train.shift=3", A3) and tables.arm_matches(A3, A3)
    assert not tables.arm_matches("train.shift=3", A1) and not tables.arm_matches(
        "train.shift=3", "train.shift=30"
    )


def test_report_without_runs_is_an_error_and_without_axis_still_renders(tmp_path: Path) -> None:
    spec = parse_spec({"name": "empty_spec", "base": BASE, "seeds": [0]})
    with pytest.raises(
        ValueError, match="no runs"
    ) as info:  # nothing to report: a clear error, no empty report
        render_report(spec, tmp_path / "runs", "smoke", tmp_path / "out")
    assert str(tmp_path / "runs") in str(info.value) and "profile smoke" in str(info.value)
    assert not (tmp_path / "out" / "report.md").exists()
    write_runs(
        tmp_path / "runs", {"base": [("done", 0.5, 2.0)]}, spec="empty_spec"
    )  # one arm, no axis
    md = render_report(spec, tmp_path / "runs", "smoke", tmp_path / "out")
    assert md.is_file() and (md.parent / "report.html").is_file()
    assert "Runs: 1" in md.read_text()


def test_report_with_a_study_has_optuna_plots(tmp_path: Path) -> None:
    import optuna
    from test_harness_search import (
        Recorder,
        make_spec,
    )  # objective with a known optimum (same tests dir)

    from harness.search import optimize

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = make_spec(n_trials=4)
    optimize(spec, tmp_path / "runs", "smoke", Recorder(), progress=False)
    write_runs(tmp_path / "runs", spec=spec.name)  # a report needs runs besides the study
    md = render_report(spec, tmp_path / "runs", "smoke", tmp_path / "out")
    assert (md.parent / "plots" / "optimization_history.png").is_file()
    assert (md.parent / "plots" / "contour.png").is_file()
    text = md.read_text()
    assert "Optuna optimization history" in text and "| trial | state | value |" in text


def test_corruption_curves_run_from_full_noise_to_clean() -> None:
    import torch

    from harness.report import _path_label, corruption_curves
    from ursa.path_config import PathConfig

    emb = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
    configs = [
        PathConfig.model_validate(d) for d in ({"kind": "masked"}, {"kind": "mixture"}, {"c": 3.0})
    ]
    curves = corruption_curves(emb, {_path_label(c): c for c in configs}, n=512)
    assert set(curves) == {"masked exponent=1", "mixture exponent=1", "metric c=3 alpha=0.9"}
    starts = [d[0] for _, d in curves.values()]
    for label, (t, d) in curves.items():
        assert t[0] == 0.0 and t[-1] == 1.0 and len(d) == 11
        assert d[-1] == pytest.approx(0.0, abs=1e-9), label  # t = 1 is the clean token
    # every path starts at the uniform mean distance D(0); Monte Carlo over 512 ids: within 15%
    assert max(starts) / min(starts) < 1.15


def test_metric_groups_split_by_task_prefix() -> None:
    from harness.tables import metric_groups

    groups = metric_groups(
        ["alignment", "train_loss", "i2v.alignment", "long.long_drift", "i2v.first_frame_fidelity"]
    )
    assert groups == {
        "t2v": ["alignment", "train_loss"],
        "i2v": ["i2v.alignment", "i2v.first_frame_fidelity"],
        "long": ["long.long_drift"],
    }


# ----------------------------------------------------------------------------- issue 27: reports people read

NAMED = {
    "name": "named",
    "base": BASE,
    "seeds": [0],
    "zip": [
        {
            "train.shift": [1.0, 3.0],
            "train.shift_rule": ["fixed", "fixed"],
            "labels": ["gentle shift", "paper shift, lambda = 3"],
        }
    ],
}


def test_named_arms_label_runs_everywhere_and_the_legend_shows_their_settings(
    tmp_path: Path,
) -> None:
    from harness.expand import expand
    from harness.report import arm_legend, shared_models, with_labels
    from harness.spec import SpecError

    spec = parse_spec(NAMED)
    assert [r.arm for r in expand(spec, "default")] == ["gentle shift", "paper shift, lambda = 3"]
    with pytest.raises(SpecError, match=r"zip\[0\]\.labels: one distinct"):
        parse_spec({**NAMED, "zip": [{**NAMED["zip"][0], "labels": ["same", "same"]}]})
    with pytest.raises(SpecError, match=r"zip\[0\]"):
        parse_spec({**NAMED, "zip": [{**NAMED["zip"][0], "labels": ["one"]}]})
    # runs stored under the "key=value" labels take the spec's names by their axis values
    write_runs(
        tmp_path / "runs",
        {A1: RUNS[A1][:1], A3: RUNS[A3][:1], "ref:real": RUNS["ref:real"]},
        spec="named",
        profile="default",
    )
    df = with_labels(load(tmp_path / "runs", "named"), spec, "default")
    assert set(df["arm"]) == {"gentle shift", "paper shift, lambda = 3", "ref:real"}
    legend = arm_legend(df).set_index("arm")["settings"]
    assert legend["gentle shift"] == "train.shift=1, train.shift_rule=fixed"
    shared = shared_models(df.assign(model="m1"))  # labels holding commas stay readable when joined
    assert shared == ["model m1 (seed 0): gentle shift | paper shift, lambda = 3"]
    md = render_report(spec, tmp_path / "runs", "default", tmp_path / "report")
    text = md.read_text()
    assert (
        "## Arms" in text
        and "| paper shift, lambda = 3 | train.shift=3, train.shift_rule=fixed |" in text
    )


def test_a_grid_axis_names_its_values_everywhere_an_arm_label_shows(tmp_path: Path) -> None:
    """`grid: {key: {values, labels}}` names arms as a zip group's `labels:` does: expand, stored
    runs relabelled, the Arms legend, the report; a profile's plain list keeps the names; a labels
    list of the wrong length, or a profile value without a name, is one paragraph naming the key."""
    from harness.expand import expand
    from harness.report import arm_legend, with_labels
    from harness.spec import SpecError

    named = {
        "name": "named",
        "base": BASE,
        "seeds": [0],
        "grid": {
            "train.shift": {"values": [1.0, 3.0], "labels": ["gentle shift", "paper shift"]},
            "train.shift_rule": ["fixed"],
        },
        "profiles": {"smoke": {"grid.train.shift": [3.0]}},
    }
    spec = parse_spec(named)
    assert [r.arm for r in expand(spec, "default")] == [
        "gentle shift, train.shift_rule=fixed",
        "paper shift, train.shift_rule=fixed",
    ]
    assert [r.arm for r in expand(spec, "smoke")] == ["paper shift, train.shift_rule=fixed"]
    write_runs(
        tmp_path / "runs", {A1: RUNS[A1][:1], A3: RUNS[A3][:1]}, spec="named", profile="default"
    )
    df = with_labels(load(tmp_path / "runs", "named"), spec, "default")
    assert set(df["arm"]) == {
        "gentle shift, train.shift_rule=fixed",
        "paper shift, train.shift_rule=fixed",
    }
    assert arm_legend(df).set_index("arm")["settings"]["paper shift, train.shift_rule=fixed"] == A3
    text = render_report(spec, tmp_path / "runs", "default", tmp_path / "report").read_text()
    assert f"| gentle shift, train.shift_rule=fixed | {A1} |" in text and "## Arms" in text
    wrong = {**named, "grid": {"train.shift": {"values": [1.0, 3.0], "labels": ["only one"]}}}
    with pytest.raises(
        SpecError,
        match=r"grid: expected labels of grid axis 'train.shift': one distinct, "
        r"non-empty name per value \(2 values: \[1.0, 3.0\].*got 1: \['only one'\]",
    ):
        parse_spec(wrong)
    with pytest.raises(
        SpecError,
        match=r"profiles.smoke.grid.train.shift: expected values the spec's axis "
        r"names .* got 5.0, which has no label",
    ):
        parse_spec({**named, "profiles": {"smoke": {"grid.train.shift": [5.0]}}})


def load(root: Path, name: str, profile: str = "default") -> pd.DataFrame:
    from harness.store import load_results

    return load_results(root, name, profile)


def test_one_colour_per_arm_across_every_plot(tmp_path: Path) -> None:
    from harness import plots

    arms = ["masked", "mixture", "metric", "linearised metric"]
    colours = plots.arm_colours(arms)
    assert len(set(colours.values())) == 4
    curve = pd.DataFrame(
        [
            {"arm": a, "step": s, "mean": i + s / 100, "low": np.nan, "high": np.nan, "seeds": 1}
            for i, a in enumerate(reversed(arms))
            for s in (50, 100)
        ]
    )  # another order
    denoise = pd.DataFrame(
        [{"arm": a, "t=0.1": 1.0 + i, "t=0.9": 0.5 + i} for i, a in enumerate(arms[2:])]
    )
    lines = {
        "linearity": plots.linearity(
            {a: ([0, 1], [1, 0]) for a in arms[1:]} | {"unused path": ([0, 1], [1, 0.5])}, colours
        ),
        "learning": plots.learning_curves(curve, "alignment", colours=colours),
        "denoising": plots.denoising(denoise, colours),
    }
    for name, fig in lines.items():
        for line in fig.axes[0].get_lines():
            if line.get_label() in colours:
                assert line.get_color() == colours[line.get_label()], (name, line.get_label())
            elif (
                line.get_label() == "unused path"
            ):  # a curve no arm trains: grey, never an arm's colour
                assert line.get_color() not in colours.values()
        plots.plt.close(fig)


def test_floor_note_speaks_first_when_no_arm_beats_the_floor() -> None:
    from harness.report import floor_note

    def summary(arm_means: list[float]) -> pd.DataFrame:
        rows = [
            {"arm": f"a{i}", "role": "arm", "alignment.mean": m} for i, m in enumerate(arm_means)
        ]
        return pd.DataFrame(
            rows
            + [
                {"arm": "ref:shuffled", "role": "floor (shuffled prompts)", "alignment.mean": 0.30},
                {"arm": "ref:real", "role": "ceiling (real clips)", "alignment.mean": 0.9},
            ]
        )

    note = floor_note(summary([0.10, 0.30]), "alignment")
    assert note.startswith("No arm beats the floor") and "ref:shuffled" in note and "0.3" in note
    assert floor_note(summary([0.10, 0.31]), "alignment") == ""
    assert (
        floor_note(summary([0.10]).query("role != 'floor (shuffled prompts)'"), "alignment") == ""
    )
    # above the floor but below a degenerate sample (the static clip): said too, after the floor
    static = {
        "arm": "ref:static",
        "role": "degenerate (first frame repeated)",
        "alignment.mean": 0.5,
    }
    note = floor_note(pd.concat([summary([0.35, 0.40]), pd.DataFrame([static])]), "alignment")
    assert note.startswith("No arm beats a degenerate sample") and "ref:static" in note
    assert floor_note(pd.concat([summary([0.35, 0.51]), pd.DataFrame([static])]), "alignment") == ""
    note = floor_note(pd.concat([summary([0.10, 0.20]), pd.DataFrame([static])]), "alignment")
    assert note.startswith("No arm beats the floor")


def test_report_blocks_people_read(tmp_path: Path) -> None:
    """Multi-line descriptions keep their lines, config blocks carry no pending state, learning-curve
    tables name their steps, a boolean axis is no plot axis, flat metrics are not drawn as effects."""
    from harness.report import _axis, paragraphs

    assert paragraphs("Line one.\nLine two.\n\nNew paragraph.") == [
        "Line one.",
        "Line two.",
        "New paragraph.",
    ]
    write_runs(tmp_path / "runs")
    spec = parse_spec({**SPEC, "description": "First line.\nSecond line."})
    text = render_report(spec, tmp_path / "runs", "smoke", tmp_path / "r").read_text()
    assert "First line.\n\nSecond line." in text
    assert (
        '"state"' not in text and '"metrics"' not in text
    )  # config.json's head is the plan's, not the result
    summary = pd.DataFrame(
        {
            "role": ["arm", "arm"],
            "param.path.calibrate": [False, True],
            "param.train.shift": [1.0, 3.0],
        }
    )
    flags = parse_spec(
        {**SPEC, "grid": {"path.calibrate": [False, True], "train.shift": [1.0, 3.0]}}
    )
    assert _axis(flags, summary) == "train.shift"
    from harness import plots

    flat = pd.DataFrame(
        {
            "role": ["arm", "arm", "ceiling"],
            "denoise_ce.mean": [2.0476, 2.0481, 1.0],
            "alignment.mean": [0.2, 0.4, 0.9],
        }
    )
    assert plots.flat_metrics(flat, ["denoise_ce", "alignment"]) == ["denoise_ce"]


def test_a_copied_spec_does_not_overwrite_the_report_of_the_spec_it_came_from(
    tmp_path: Path,
) -> None:
    import yaml

    from harness.specfile import load_spec

    write_runs(tmp_path / "runs", spec="timestep_shift", profile="smoke")
    original, copy = tmp_path / "a" / "spec.yaml", tmp_path / "b" / "spec.yaml"
    for path in (original, copy):
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "reports" / "timestep_shift" / "smoke"
    render_report(load_spec(original), tmp_path / "runs", "smoke", out)
    before = (out / "report.md").read_text()
    with pytest.raises(ValueError, match="holds the report of spec file .*--reports-dir"):
        render_report(load_spec(copy), tmp_path / "runs", "smoke", out)
    assert (out / "report.md").read_text() == before
    render_report(
        load_spec(original), tmp_path / "runs", "smoke", out
    )  # its own spec file rewrites it
    # the same spec file on another runs root (a scratch run) is refused too, while the first root exists
    write_runs(tmp_path / "scratch", spec="timestep_shift", profile="smoke")
    with pytest.raises(
        ValueError,
        match=f"on runs root {tmp_path / 'runs'}; expected the report of .* on runs "
        f"root {tmp_path / 'scratch'} to go elsewhere",
    ):
        render_report(load_spec(original), tmp_path / "scratch", "smoke", out)
    assert (out / "report.md").read_text() == before
    (tmp_path / "runs").rename(tmp_path / "runs.old")  # a runs root that is gone owns no report
    render_report(load_spec(original), tmp_path / "scratch", "smoke", out)


def test_report_flags_damaged_runs_and_leaves_them_out(tmp_path: Path) -> None:
    from harness.store import mark_stage_done

    write_runs(tmp_path / "runs", {A1: RUNS[A1][:2]}, profile="default")
    rdirs = sorted((tmp_path / "runs" / "timestep_shift" / "default").glob("0*"))
    for rdir in rdirs:
        for stage in ("train", "sample", "score"):
            (rdir / "stages" / stage).mkdir(parents=True, exist_ok=True)
            atomic_write_json(rdir / "stages" / stage / "out.json", {"x": 1})
            mark_stage_done(rdir, stage)
    atomic_write_json(rdirs[1] / "stages" / "score" / "out.json", {"x": 2})  # an edited output
    spec = parse_spec({**SPEC, "grid": {"train.shift": [1.0], "train.shift_rule": ["fixed"]}})
    text = render_report(spec, tmp_path / "runs", "default", tmp_path / "r").read_text()
    assert "1 damaged" in text and f"seed 1 ({rdirs[1].name}): score" in text
    assert "| 1/2 |" in text  # the damaged seed is out of the statistics


def test_learning_curve_table_names_its_steps(tmp_path: Path) -> None:
    """One column per training step ("step 20", ...), no empty column-name header row."""
    write_runs(tmp_path / "runs", {A1: RUNS[A1][:2], A3: RUNS[A3][:2]})
    for rdir in (tmp_path / "runs" / "timestep_shift" / "smoke").glob("0*"):
        atomic_write_json(
            rdir / "stages" / "score" / "curve.json",
            {"20": {"alignment": 0.1}, "40": {"alignment": 0.2}},
        )
    spec = parse_spec({**SPEC, "report": {"headline": "alignment"}})
    md = render_report(spec, tmp_path / "runs", "smoke", tmp_path / "r")
    text, page = md.read_text(), (md.parent / "report.html").read_text()
    assert "| arm | step 20 | step 40 |" in text
    assert "<th>step</th>" not in page and "<th>step 40</th>" in page


def test_linearity_draws_every_arm_with_the_calibrated_one_at_its_fitted_point(
    tmp_path: Path, tmp_path_factory
) -> None:
    from harness_fixtures import WORLD, seeded_runs_root

    from harness.report import _linearity

    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = parse_spec(
        {
            "name": "paths",
            "seeds": [0],
            "base": {
                "benchmark": {"name": "shapes", "world": WORLD},
                "tokenizer": {"codebook_size": 65},
                "score": {"which": ["alignment"]},
            },
            "zip": [
                {
                    "path": [
                        {"kind": "masked"},
                        {"kind": "metric"},
                        {"kind": "metric", "calibrate": True},
                    ],
                    "labels": ["masked", "metric (3, 0.9)", "linearised metric"],
                }
            ],
        }
    )
    df = pd.DataFrame(
        {"arm": ["masked", "metric (3, 0.9)", "linearised metric"], "run_dir": [str(tmp_path)] * 3}
    )
    curves, why = _linearity(spec, root, "default", df, None)
    assert why == "" and set(curves) == {"masked", "metric (3, 0.9)", "linearised metric"}
    assert (
        curves["linearised metric"] != curves["metric (3, 0.9)"]
    )  # fitted (c, alpha), not the defaults
    # calibrated: the mean distance falls linearly in t, within 10% of d(0) (measured 5.4%; the
    # default (3, 0.9) deviates 31%)
    t, d = curves["linearised metric"]
    line = [d[0] * (1 - x) for x in t]
    assert max(abs(a - b) for a, b in zip(d, line)) < 0.1 * d[0], (d, line)
