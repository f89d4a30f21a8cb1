"""`python -m harness findings`: the paper's ablation claims against the committed reports.

The claims are data (ablations/claims/paper.yaml): each names the paper's words, the spec that
tests it and the tests of that spec's verdict that decide it (arm against the report's baseline,
metric, statistic, or the change of the gap along report.compare_within, with the direction
the paper expects). Each claim's row is read from `reports/<spec>/<profile>/verdict.json` (written
by the report stage) and says: supported (every test significant in the expected direction),
contradicted (a test significant the other way), undecided (with the minimum detectable
effect), not tested (the report's verdict has no such test, e.g. no compare_within axis for an
interaction), not run (with the command that runs it). FINDINGS.md records the fingerprint (sha256 of
verdict.json) and commit of every report it summarises, so `stale` can tell when a report has
changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from harness.report import VERDICT_FILE, Block, test_arms, to_html, to_markdown
from harness.spec import SpecError, validate_model
from harness.specfile import load_spec, load_yaml_text
from harness.tables import arm_matches

CLAIMS = Path("ablations/claims/paper.yaml")
INPUTS = re.compile(r"<!-- findings inputs: (\{.*\}) -->")  # FINDINGS.md's record of its inputs


class Test(BaseModel):
    """One test of a spec's verdict (verdict.json's `tests`) that decides a claim."""

    model_config = ConfigDict(extra="forbid")
    arm: str = Field(
        min_length=1
    )  # an arm pattern ("path.kind=metric" matches "path.kind=metric, speed=0.5")
    metric: str = Field(min_length=1)
    statistic: Literal["final", "curve_mean", "steps_to"] = "final"
    interaction: bool = False  # the change of the gap along the report's compare_within axis
    # only the test at this point of compare_within ("benchmark.world.frames=4"); every point if unset
    where: str | None = None
    expect: Literal["better", "worse"] = "better"  # the paper's direction against the baseline


class Claim(BaseModel):
    """One claim of the paper's ablation study and the spec whose report decides it."""

    model_config = ConfigDict(extra="forbid")
    claim: str = Field(min_length=1)
    paper: str = Field(min_length=1)  # where the paper says it
    spec: str = Field(min_length=1)  # spec file, relative to the claims file
    profile: Literal["smoke", "ci", "default", "full"] = "default"
    tests: list[Test] = Field(min_length=1)


class Claims(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claims: list[Claim] = Field(min_length=1)


def load_claims(path: Path) -> list[Claim]:
    """The claims file, validated: every spec loads and every test's arm matches an arm of its
    spec; SpecError (one paragraph naming the file and key) otherwise."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            f"{path}: expected a readable claims file, got {exc.strerror or exc}."
        ) from None
    claims = validate_model(Claims, load_yaml_text(text, str(path)), str(path)).claims
    for i, c in enumerate(claims):
        spec_path = path.parent / c.spec
        if not spec_path.is_file():
            raise SpecError(
                f"{path}: claims[{i}].spec: expected a spec file (relative to {path.parent}), "
                f"got missing path {c.spec!r}."
            )
        spec = load_spec(spec_path)
        arms = test_arms(spec)
        for j, t in enumerate(c.tests):
            if not any(arm_matches(t.arm, a) for a in arms):
                raise SpecError(
                    f"{path}: claims[{i}].tests[{j}].arm: expected an arm of {c.spec} "
                    f"({'; '.join(arms)}), got {t.arm!r}."
                )
    return claims


@dataclass
class Row:
    """One claim's finding."""

    claim: Claim
    spec: str  # the spec's name
    folder: str  # <spec>/<profile>, the report's folder under the reports folder
    verdict: str  # supported | contradicted | undecided | not tested | not run
    effect: str  # each test's difference [interval] (p), or the command that runs the spec
    seeds: str
    replicate: str  # agrees | disagrees | not replicated
    report: str  # report.md relative to the reports folder
    commit: str
    fingerprint: str | None  # sha256 (12 hex) of verdict.json, None when there is none


def _call(test: Test, record: dict) -> str:
    """supported / contradicted / undecided for one record of verdict.json."""
    if not record["significant"] or record["difference"] is None:
        return "undecided"
    better = (record["difference"] > 0) == record["better_if_positive"]
    return "supported" if better == (test.expect == "better") else "contradicted"


def _effect(record: dict, call: str) -> str:
    mde = f"; MDE ±{record['mde']:.3g}" if call == "undecided" and record["mde"] is not None else ""
    p = f"p {record['p']:.2g}" if record["p"] is not None else "no p"
    where = f" at {record['where']}" if record["where"] else ""
    return f"{record['arm']}{where}: {record['interval']} ({p}{mde})"


def finding(claim: Claim, claims_dir: Path, reports: Path) -> Row:
    """The row of one claim from its spec's committed report."""
    spec_file = os.path.normpath(
        claims_dir / claim.spec
    )  # ablations/x.yaml, not ablations/claims/../x.yaml
    spec = load_spec(spec_file)
    folder = reports / spec.name / claim.profile
    name = f"{spec.name}/{claim.profile}"
    run = f"`python -m harness run {spec_file} --profile {claim.profile}`"
    path = folder / VERDICT_FILE
    if not path.is_file():
        why = (
            "its report predates verdict.json: " if (folder / "report.md").is_file() else ""
        ) + run
        return Row(claim, spec.name, name, "not run", why, "", "", "", "", None)
    raw = path.read_bytes()
    try:
        record = json.loads(raw)
        tests = record["tests"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path}: expected the JSON a report writes (a 'tests' list), got unreadable "
            f"content; re-render it with `python -m harness report {spec_file} "
            f"--profile {claim.profile}`"
        ) from None
    calls, effects, agrees = [], [], []
    for test in claim.tests:
        found = [
            r
            for r in tests
            if arm_matches(test.arm, r["arm"])
            and r["metric"] == test.metric
            and r["statistic"] == test.statistic
            and r["interaction"] == test.interaction
            and (test.where is None or r["where"] == test.where)
        ]
        if not found:
            calls.append("not tested")
            effects.append(
                f"{test.arm}: {test.metric} {test.statistic} is not a test of this report's verdict"
            )
        for r in found:
            calls.append(_call(test, r))
            effects.append(_effect(r, calls[-1]))
            agrees.append(r.get("replicate_agrees"))
    verdict = next(
        (v for v in ("contradicted", "not tested") if v in calls),
        "supported" if all(c == "supported" for c in calls) else "undecided",
    )
    replicate = (
        "not replicated"
        if not agrees or any(a is None for a in agrees)
        else "agrees"
        if all(agrees)
        else "disagrees"
    )
    seeds = ", ".join(str(s) for s in record.get("seeds", []))
    if record.get("replicate_seeds"):
        replicate += f" (seeds {record['replicate_seeds']})"
    return Row(
        claim,
        spec.name,
        name,
        verdict,
        "; ".join(effects),
        seeds,
        replicate,
        f"{name}/report.md",
        str(record.get("commit", "")),
        hashlib.sha256(raw).hexdigest()[:12],
    )


def findings(claims_path: Path = CLAIMS, reports: Path = Path("reports")) -> list[Row]:
    claims = load_claims(claims_path)
    return [finding(c, claims_path.parent, reports) for c in claims]


def inputs(rows: list[Row]) -> dict[str, str | None]:
    """{report folder: fingerprint of its verdict.json or None}: what a FINDINGS.md was made from."""
    return {r.folder: r.fingerprint for r in rows}


def _table(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim (paper)": f"{r.claim.claim} ({r.claim.paper})",
                "spec": r.spec,
                "verdict (miniature)": r.verdict,
                "effect [95% interval]": r.effect,
                "seeds": r.seeds,
                "replicate": r.replicate,
                "report": r.report,
                "commit": r.commit,
            }
            for r in rows
        ]
    )


def write_findings(rows: list[Row], out: Path, claims_path: Path) -> Path:
    """reports/FINDINGS.md and FINDINGS.html; returns the .md path."""
    counts = pd.Series([r.verdict for r in rows]).value_counts()
    blocks = [
        Block(
            "p",
            f"One row per claim of the paper's ablation study ({claims_path}), decided "
            f"by the committed report of its spec at miniature scale: supported (every "
            f"test significant in the paper's direction), contradicted (a test "
            f"significant the other way), undecided (no significant difference; the "
            f"MDE is the smallest true difference the test detects with 80% power), "
            f"not tested (the report's verdict has no such test), "
            f"not run (the command that runs it). Effects are differences against the "
            f"report's baseline (or the change of that gap along its axis) with the "
            f"interval and p the report prints (Holm-adjusted in a family). "
            f"Tally: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
        ),
        Block("table", table=_table(rows)),
        Block(
            "p",
            "Made by `python -m harness findings`; a test "
            "(tests/harness/test_harness_findings.py) fails when a report changed "
            "after this page was made.",
        ),
    ]
    out.mkdir(parents=True, exist_ok=True)
    record = f"\n<!-- findings inputs: {json.dumps(inputs(rows), sort_keys=True)} -->\n"
    (out / "FINDINGS.md").write_text(
        to_markdown("Findings: the paper's ablation claims at miniature scale", blocks) + record
    )
    (out / "FINDINGS.html").write_text(
        to_html("Findings: the paper's ablation claims at miniature scale", blocks)
    )
    return out / "FINDINGS.md"


def stale(claims_path: Path = CLAIMS, reports: Path = Path("reports")) -> list[str]:
    """One line per report whose verdict.json differs from what FINDINGS.md records (changed,
    appeared or gone since), or why FINDINGS.md cannot be compared; [] when it is current."""
    page = reports / "FINDINGS.md"
    found = INPUTS.search(page.read_text()) if page.is_file() else None
    try:
        recorded = json.loads(found.group(1)) if found else None
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict):
        return [
            f"{page}: missing or without a readable inputs record; run `python -m harness findings`"
        ]
    now = inputs(findings(claims_path, reports))
    fix = "; run `python -m harness findings`"
    return [
        f"{folder}: FINDINGS.md records verdict.json {recorded.get(folder)}, it is now {fp}{fix}"
        for folder, fp in now.items()
        if folder not in recorded or recorded[folder] != fp
    ] + [
        f"{folder}: FINDINGS.md summarises it, no claim does now{fix}"
        for folder in recorded
        if folder not in now
    ]
