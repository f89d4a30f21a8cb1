"""harness.scaling on stored runs: parameter counts read from each run's train record, each
metric's slope per decade of parameters recovered with a crossed interval, semantics against
quality as the share of headroom, and no fit with a single size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness import scaling

SIZES = {"tiny": 10_000, "small": 100_000, "base": 1_000_000}  # one decade apart


def _runs(
    tmp_path: Path, sizes: dict[str, int], seeds: int = 6, prompts: int = 120
) -> pd.DataFrame:
    """Runs whose alignment rises 0.1 per decade (per-prompt 0/1 clips at those rates) and whose
    quality stays at 0.8: per-clip values in clips.json, parameters in the train record."""
    rng = np.random.default_rng(0)
    prompt = rng.normal(0, 0.1, prompts)
    rows = []
    for arm, n in sizes.items():
        for seed in range(seeds):
            rdir = tmp_path / f"{arm}-{seed}"
            (rdir / "stages" / "train").mkdir(parents=True)
            (rdir / "stages" / "score").mkdir(parents=True)
            (rdir / "stages" / "train" / "done.json").write_text(
                json.dumps({"parameters": n + 500, "non_embedding_parameters": n})
            )
            rate = 0.3 + 0.1 * (math.log10(n) - 4) + prompt + rng.normal(0, 0.03)
            alignment = (rng.random(prompts) < np.clip(rate, 0, 1)).astype(float)
            quality = np.clip(0.8 + prompt + rng.normal(0, 0.05, prompts), 0, 1)
            (rdir / "stages" / "score" / "clips.json").write_text(
                json.dumps({"alignment": alignment.tolist(), "clean_fraction": quality.tolist()})
            )
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "state": "done",
                    "reference": None,
                    "run_dir": str(rdir),
                    "metric.alignment": alignment.mean(),
                    "metric.clean_fraction": quality.mean(),
                }
            )
    return pd.DataFrame(rows)


def test_slopes_per_decade_and_headroom_shares(tmp_path: Path) -> None:
    df = _runs(tmp_path, SIZES)
    assert scaling.parameters(df) == SIZES
    summary = pd.DataFrame([{"arm": "ref:real", "alignment.mean": 1.0, "clean_fraction.mean": 1.0}])
    fitted = scaling.fits(df, summary, {"semantics": ["alignment"], "quality": ["clean_fraction"]})
    by = fitted.set_index("metric")
    slope = by.loc["alignment", "slope"]
    assert slope.low <= 0.1 <= slope.high and slope.low > 0  # recovered, and significant
    assert slope.seeds == 6 and slope.clips == 120  # paired by seed and prompt
    assert by.loc["alignment", "p (Holm)"] <= 0.05
    assert abs(by.loc["clean_fraction", "slope"].mean) < 0.01  # flat (per-clip noise SD 0.05)
    share = by.loc["alignment", "share of headroom per decade"]
    assert math.isclose(share, slope.mean / (1.0 - by.loc["alignment", "smallest"]))
    text = scaling.verdict(fitted)
    assert "semantics: mean share of headroom per decade +" in text and "alignment +0." in text
    assert "quality: mean share of headroom per decade +0.0" in text
    assert list(scaling.table(fitted).columns)[4] == "slope per decade [95%]"


def test_one_size_or_no_parameter_record_gives_no_fit(tmp_path: Path) -> None:
    df = _runs(tmp_path, {"tiny": 10_000})
    assert scaling.fits(df, pd.DataFrame(), {"semantics": ["alignment"]}).empty
    for done in tmp_path.glob("*/stages/train/done.json"):
        done.write_text("{}")  # a run trained before parameters were recorded
    assert scaling.parameters(df) == {}


def test_share_gap_is_semantics_minus_quality_and_a_test_of_the_verdict(tmp_path: Path) -> None:
    """The gap between the groups' headroom shares equals the difference of the table's shares
    (one contrast over every cell), is significant when semantics rise and quality stays flat,
    and every slope and the gap are tests of verdict.json (arm SLOPE_ARM)."""
    df = _runs(tmp_path, SIZES)
    summary = pd.DataFrame([{"arm": "ref:real", "alignment.mean": 1.0, "clean_fraction.mean": 1.0}])
    fitted = scaling.fits(df, summary, {"semantics": ["alignment"], "quality": ["clean_fraction"]})
    gap = scaling.share_gap(df, fitted)
    assert gap is not None and gap.where == "semantics - quality"
    shares = fitted.set_index("metric")["share of headroom per decade"]
    assert math.isclose(gap.difference.mean, shares["alignment"] - shares["clean_fraction"])
    assert gap.significant and gap.difference.low > 0 and gap.call() == "better, significant"
    assert "semantics - quality share of headroom per decade: +" in scaling.verdict(fitted, gap)
    tests = scaling.claims(fitted)
    assert [t.metric for t in tests] == ["alignment", "clean_fraction"]
    assert {t.arm for t in tests} == {scaling.SLOPE_ARM}
    one_group = fitted[fitted["group"] == "semantics"]
    assert scaling.share_gap(df, one_group) is None  # a gap needs two groups
