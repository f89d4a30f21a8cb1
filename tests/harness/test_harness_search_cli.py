"""`python -m harness search`: one worker of a spec's study, no grid or reference runs."""

from __future__ import annotations

from pathlib import Path

from harness_fixtures import seeded_runs_root, tiny_spec

from harness.cli import main
from harness.search import open_study
from harness.specfile import load_spec
from harness.store import load_results


def test_search_workers_share_one_study_and_run_only_trials(
    tmp_path: Path, tmp_path_factory, capsys
) -> None:
    search = {
        "params": {"path.c": {"type": "float", "low": 0.5, "high": 5.0}},
        "n_trials": 2,
        "objective": "alignment",
        "sampler_seed": 3,
    }
    spec_path = tiny_spec(tmp_path / "tiny.yaml", search=search)
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    argv = ["search", str(spec_path), "--runs-root", str(root), "--no-progress"]
    assert main(argv) == 0
    assert main(argv) == 0  # a second worker on a finished study: the budget is spent, nothing runs

    study = open_study(load_spec(spec_path), root, "default")
    assert len(study.trials) == 2
    trial_runs = {rid for t in study.trials for rid in t.user_attrs["run_ids"]}
    table = load_results(root, "tiny", "default")
    assert set(table["run_id"]) == trial_runs  # no grid run, no reference rows


def test_search_on_a_spec_without_search_block_is_a_clear_error(tmp_path: Path, capsys) -> None:
    spec_path = tiny_spec(tmp_path / "plain.yaml")
    assert main(["search", str(spec_path), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "search:" in capsys.readouterr().err
