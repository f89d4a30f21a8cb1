"""`python -m harness findings`: the committed FINDINGS.md is current, a smoke run's report
becomes a finding, the replicate's agreement is carried, stale pages and bad claims files are
reported in one paragraph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from harness_fixtures import seeded_runs_root, tiny_spec
from test_harness_report import RUNS, SPEC, write_runs

from harness.cli import main
from harness.findings import CLAIMS, findings, load_claims, stale, write_findings
from harness.report import render_report
from harness.runner import run_spec
from harness.spec import SpecError
from harness.specfile import load_spec

ROOT = Path(__file__).resolve().parents[2]


def test_committed_findings_page_is_not_older_than_any_report_it_summarises(monkeypatch) -> None:
    """Fails when a report under reports/ was re-rendered (its verdict.json changed, appeared or
    went) after reports/FINDINGS.md was made: rerun `python -m harness findings` and commit."""
    monkeypatch.chdir(ROOT)
    assert stale(CLAIMS, Path("reports")) == []


def claims_file(folder: Path, spec: str, tests: list[dict], **extra) -> Path:
    path = folder / "claims" / "claims.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "claims": [
                    {
                        "claim": "metric beats masked",
                        "paper": "table 1",
                        "spec": f"../{spec}",
                        "tests": tests,
                        **extra,
                    }
                ]
            }
        )
    )
    return path


def test_findings_from_a_smoke_run(tmp_path: Path, tmp_path_factory) -> None:
    """A real run (2 paths x 2 seeds, seconds) and its report give the claim a verdict, its
    effect and interval, its seeds and the commit; the page records verdict.json's fingerprint,
    so re-rendering the report with other results makes the page stale."""
    spec_path = tiny_spec(
        tmp_path / "tiny.yaml",
        grid={"path.kind": ["masked", "metric"]},
        seeds=[0, 1],
        report={
            "headline": "alignment",
            "baseline": "path.kind=masked",
            "primary": {"arm": "path.kind=metric"},
        },
    )
    spec, runs = load_spec(spec_path), seeded_runs_root(tmp_path, tmp_path_factory)
    assert not run_spec(spec, "smoke", runs).failed
    reports = tmp_path / "reports"
    claims = claims_file(
        tmp_path, "tiny.yaml", [{"arm": "path.kind=metric", "metric": "alignment"}]
    )
    assert [r.verdict for r in findings(claims, reports)] == ["not run"]
    assert "python -m harness run" in findings(claims, reports)[0].effect
    render_report(spec, runs, "smoke", reports / "tiny" / "smoke")
    record = json.loads((reports / "tiny" / "smoke" / "verdict.json").read_text())
    assert record["seeds"] == [0, 1] and any(t["primary"] for t in record["tests"])
    with pytest.raises(SpecError, match="profile"):
        findings(
            claims_file(
                tmp_path,
                "tiny.yaml",
                [{"arm": "path.kind=metric", "metric": "alignment"}],
                profile="tiny",
            ),
            reports,
        )
    claims = claims_file(
        tmp_path, "tiny.yaml", [{"arm": "path.kind=metric", "metric": "alignment"}], profile="smoke"
    )
    [row] = findings(claims, reports)
    assert row.verdict in ("supported", "contradicted", "undecided")
    assert row.effect.startswith("path.kind=metric: ") and row.seeds == "0, 1"
    assert row.replicate == "not replicated" and row.commit == record["commit"] and row.fingerprint
    page = write_findings([row], reports, claims)
    assert "metric beats masked" in page.read_text() and (reports / "FINDINGS.html").is_file()
    assert stale(claims, reports) == []
    record["tests"] = []  # a re-rendered report whose verdict changed
    (reports / "tiny" / "smoke" / "verdict.json").write_text(json.dumps(record))
    [line] = stale(claims, reports)
    assert (
        line.startswith("tiny/smoke: FINDINGS.md records verdict.json")
        and "python -m harness findings" in line
    )
    assert (
        main(["findings", "--claims", str(claims), "--reports-dir", str(reports), "--check"]) == 1
    )


def test_a_finding_carries_the_replicates_agreement(tmp_path: Path) -> None:
    """Runs and a replicate on fresh seeds 11-13 (the report's own test fixture): the row says
    agrees, with the replicate's seeds; shift 3 is better than shift 1 in both."""
    (tmp_path / "shift.yaml").write_text(
        yaml.safe_dump({**SPEC, "report": {"headline": "alignment", "baseline": "train.shift=1"}})
    )
    write_runs(tmp_path / "runs")
    write_runs(tmp_path / "runs", spec="timestep_shift.replicate", first_seed=11)
    reports = tmp_path / "reports"
    render_report(
        load_spec(tmp_path / "shift.yaml"),
        tmp_path / "runs",
        "smoke",
        reports / "timestep_shift" / "smoke",
    )
    claims = claims_file(
        tmp_path, "shift.yaml", [{"arm": "train.shift=3", "metric": "alignment"}], profile="smoke"
    )
    [row] = findings(claims, reports)
    assert row.replicate == "agrees (seeds 11, 12, 13)" and row.seeds == "0, 1, 2"
    assert row.effect.startswith(
        "train.shift=3, train.shift_rule=fixed: +0.3 [+0.3, +0.3]"
    )  # paired by seed
    assert len(RUNS) == 4  # the fixture this test reads


@pytest.mark.parametrize(
    "claim, needles",
    [
        ({"tests": []}, ["claims[0].tests", "at least 1"]),
        (
            {"tests": [{"arm": "path.kind=absorbing", "metric": "alignment"}]},
            [
                "claims[0].tests[0].arm",
                "expected an arm of ../tiny.yaml",
                "path.kind=masked",
                "'path.kind=absorbing'",
            ],
        ),
        (
            {"tests": [{"arm": "path.kind=metric", "metric": "alignment", "expect": "higher"}]},
            ["claims[0].tests[0].expect", "'better' or 'worse'"],
        ),
        ({"spec": "../none.yaml"}, ["claims[0].spec", "missing path '../none.yaml'"]),
        ({"claimz": "x"}, ["claimz", "Did you mean 'claim'"]),
    ],
)
def test_claims_file_errors_name_the_file_and_key(
    tmp_path: Path, claim: dict, needles: list[str]
) -> None:
    tiny_spec(tmp_path / "tiny.yaml", grid={"path.kind": ["masked", "metric"]})
    path = claims_file(tmp_path, "tiny.yaml", [{"arm": "path.kind=metric", "metric": "alignment"}])
    data = yaml.safe_load(path.read_text())
    data["claims"][0].update(claim)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        load_claims(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_a_claim_whose_test_the_verdict_lacks_is_not_tested(tmp_path: Path) -> None:
    """An interaction claim against a report with no compare_within axis: "not tested", naming
    the missing test, never "undecided"."""
    (tmp_path / "shift.yaml").write_text(
        yaml.safe_dump({**SPEC, "report": {"headline": "alignment", "baseline": "train.shift=1"}})
    )
    write_runs(tmp_path / "runs")
    reports = tmp_path / "reports"
    render_report(
        load_spec(tmp_path / "shift.yaml"),
        tmp_path / "runs",
        "smoke",
        reports / "timestep_shift" / "smoke",
    )
    claims = claims_file(
        tmp_path,
        "shift.yaml",
        [{"arm": "train.shift=3", "metric": "alignment", "interaction": True}],
        profile="smoke",
    )
    [row] = findings(claims, reports)
    assert row.verdict == "not tested" and "is not a test of this report's verdict" in row.effect
    # a test limited to one point of a compare_within axis the report does not have
    claims = claims_file(
        tmp_path,
        "shift.yaml",
        [{"arm": "train.shift=3", "metric": "alignment", "where": "benchmark.world.frames=4"}],
        profile="smoke",
    )
    [row] = findings(claims, reports)
    assert row.verdict == "not tested"
    unlimited = claims_file(
        tmp_path, "shift.yaml", [{"arm": "train.shift=3", "metric": "alignment"}], profile="smoke"
    )
    assert findings(unlimited, reports)[0].verdict == "supported"  # +0.3, the fixture's gap
