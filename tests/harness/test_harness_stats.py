"""Statistics of comparisons: coverage of the two-stage bootstrap, range, paired differences
(simulated data with known truth; tolerances stated per test)."""

from __future__ import annotations

import numpy as np

from harness import stats

REPS = 300


def _arm(rng: np.random.Generator, p: float, seeds: int = 5, prompts: int = 40, seed_sd: float = 0.05):
    """Per-seed 0/1 clip outcomes: a seed's success rate varies around p (a training seed effect)."""
    rates = np.clip(rng.normal(p, seed_sd, seeds), 0, 1)
    return {s: (rng.random(prompts) < r).astype(float) for s, r in enumerate(rates)}


def test_bootstrap_interval_covers_the_truth_and_stays_in_range() -> None:
    """Nominal 95%: require >= 85% over 300 replications (measured 97%: the two-stage resampling
    errs wide); every interval inside [0, 1] even at p = 0.02."""
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(REPS):
        e = stats.bootstrap(list(_arm(rng, 0.3).values()), n_boot=800, seed=i)
        hits += e.low <= 0.3 <= e.high
    assert hits / REPS >= 0.85, hits / REPS
    for i in range(50):
        e = stats.bootstrap(list(_arm(rng, 0.02).values()), n_boot=400, seed=i)
        assert 0.0 <= e.low <= e.mean <= e.high <= 1.0


def test_paired_difference_false_positive_rate_and_power() -> None:
    """Equal arms: 'significant' in <= 10% of replications (nominal 5%, measured 2.7%). A +0.2 gap (5 seeds x 40
    prompts): significant in >= 75% (measured 83%: resampling prompts inside resampled seeds
    counts within-seed noise twice, so the interval errs wide, the safe side for a verdict)."""
    rng = np.random.default_rng(1)
    false, found = 0, 0
    for i in range(REPS // 2):
        a, b = _arm(rng, 0.5), _arm(rng, 0.5)
        false += stats.paired_difference(a, b, n_boot=800, seed=i).significant
        c = _arm(rng, 0.7)
        d = stats.paired_difference(c, b, n_boot=800, seed=i)
        found += d.significant and d.mean > 0
    assert false / (REPS // 2) <= 0.10, false
    assert found / (REPS // 2) >= 0.75, found


def test_pairing_uses_common_seeds_and_clip_by_clip_differences() -> None:
    a = {0: np.array([1.0, 0.0, 1.0]), 1: np.array([1.0, 1.0, 1.0]), 7: np.array([0.0])}
    b = {0: np.array([0.0, 0.0, 1.0]), 1: np.array([1.0, 0.0, 1.0])}
    d = stats.paired_difference(a, b, n_boot=500)
    assert d.seeds == 2 and d.clips == 3 and abs(d.mean - 1 / 3) < 1e-12
    assert stats.bootstrap([]).fmt() == "—"


def test_verdict_names_the_leader_and_says_no_significant_difference() -> None:
    arms = {"masked": stats.Estimate(0.5, 0.4, 0.6, 5, 40), "metric": stats.Estimate(0.55, 0.45, 0.65, 5, 40)}
    text = stats.verdict_sentence("alignment", True, arms, "masked",
                                  {"metric": stats.Estimate(0.05, -0.02, 0.12, 5, 40)}, "End of training")
    assert text.startswith("End of training: metric has the highest mean alignment")
    assert "metric +0.05 [-0.02, +0.12] (no significant difference)" in text
    text = stats.verdict_sentence("fid", False, arms, "masked",
                                  {"metric": stats.Estimate(0.05, 0.01, 0.12, 5, 40)}, "End")
    assert "masked has the lowest mean fid" in text and "(worse, significant)" in text


def test_compare_within_gives_a_verdict_per_level_and_the_gap_along_it() -> None:
    """Result rows without clip files fall back to one value per seed; the gap sentence follows
    the metric arm (zip partner `speed` stripped from its name) across the three lengths."""
    import pandas as pd

    from harness import compare

    rows = []
    for frames, speed, gap in ((4, 1.0, 0.0), (8, 0.5, 0.1), (16, 0.25, 0.3)):
        for kind in ("masked", "metric"):
            for seed in range(5):
                value = 0.4 + (gap if kind == "metric" else 0.0) + 0.01 * seed
                rows.append({"arm": f"path.kind={kind}, frames={frames}, speed={speed:g}", "seed": seed,
                             "state": "done", "reference": None, "run_dir": "/nonexistent",
                             "param.frames": float(frames), "metric.alignment": value})
    out = compare.compare_within(pd.DataFrame(rows), "alignment", "path.kind=masked", "frames", ("speed",))
    assert [v.split(".")[0] for v in out.verdicts[:1]] == ["frames=4"]
    gap = out.verdicts[-1]
    assert gap.startswith("Paired difference of path.kind=metric against the baseline along frames: 4: +0 [+0, +0]; "
                          "8: +0.1 [+0.1, +0.1]; 16: +0.3 [+0.3, +0.3].")
    assert gap.endswith("do not overlap: the gap changes with frames.")
