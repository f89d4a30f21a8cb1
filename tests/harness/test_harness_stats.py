"""Statistics of verdicts, on simulated studies that look like the main job's data: every arm
and seed scored on the same prompts (shared prompt effects, prompt variance 0.08), per-clip
Bernoulli outcomes, seed SD 0.10-0.13 per arm (0.14-0.18 for a paired difference), an arm x
prompt interaction, and a late collapse (-0.3 at the last learning-curve point) of single seeds
with probability 0.05.

Every interval the report prints is checked: arm means and paired differences at the end of
training and over the learning curve (crossed seed x prompt t), steps to a level (seed-level t),
the change of a gap (difference of differences) and the Holm family. Tolerances: each check runs
N = 1000 seeded replications, so a rate's Monte Carlo standard error is sqrt(r (1 - r) / N):
0.0069 at 95% and 0.0069 at 5%. Coverage must reach 93% (nominal 95%, 2.9 SE below it); a
false-positive rate may exceed 5% by at most 3 SE (0.021).

Measured (this file's seeds; `pytest -s` prints them): coverage 93.3-98.2% for every interval
and design (3-10 seeds x 8-128 prompts; the lowest, 93.3%, an arm's curve mean at 3 seeds x 32
prompts); false positives of single null tests 1.2-5.8%, of the primary 4.3%, of the 5
Holm-corrected secondaries together 2.9%, of steps_to 4.6% and of the change of a gap 4.8%;
power at the computed MDE (0.26 at 5 seeds x 32 prompts) 0.78; the change of a slope in log shift
(stats.contrast, 5 shifts x 2 lengths, 4 seeds x 32 prompts) covers 94.7% and is a false positive
in 3.0%; power to detect the main job's
+0.085 end-of-training gap at 5 seeds x 32 prompts and a paired seed SD of 0.14 about 0.11
(36 seeds would give 80%).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest

from harness import comparison, stats

N = 1000
SE95 = math.sqrt(0.95 * 0.05 / N)
FP_MAX = 0.05 + 3 * SE95
COVERAGE_MIN = 0.93
POINTS = np.array([0.4, 0.7, 0.9, 1.0])  # an arm's learning curve: fraction of its final level
STEPS = np.array([250, 500, 750, 1000])  # training steps of those points
PROMPT_VAR, INTER_SD, COLLAPSE, DROP = 0.08, 0.05, 0.05, 0.3


def _study(
    rng: np.random.Generator,
    mus: list[float],
    seeds: int,
    prompts: int,
    seed_sd: float = 0.1,
    reps: int = N,
) -> np.ndarray:
    """(reps, arms, points, seeds, prompts) 0/1 clip outcomes of a study: success probability
    clip(mu_arm x point + prompt + arm x prompt + seed [+ late collapse], 0, 1)."""
    arms = len(mus)
    prompt = rng.normal(0, math.sqrt(PROMPT_VAR), (reps, 1, 1, 1, prompts))
    inter = rng.normal(0, INTER_SD, (reps, arms, 1, 1, prompts))
    seed = rng.normal(0, seed_sd, (reps, arms, 1, seeds, 1))
    late = (
        (rng.random((reps, arms, 1, seeds, 1)) < COLLAPSE) * (POINTS == 1.0)[:, None, None] * -DROP
    )
    level = np.asarray(mus)[:, None, None, None] * POINTS[:, None, None]
    prob = np.clip(level + prompt + inter + seed + late, 0, 1)
    return (rng.random(prob.shape) < prob).astype(np.float32)


@functools.cache
def _noise(seed_sd: float, n: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(12345)
    z = (
        rng.normal(0, math.sqrt(PROMPT_VAR), n)
        + rng.normal(0, INTER_SD, n)
        + rng.normal(0, seed_sd, n)
    )
    return z, DROP * (rng.random(n) < COLLAPSE)


def _truth(mu: float, seed_sd: float = 0.1, point: float = 1.0) -> float:
    """E[success] of an arm at one curve point over prompts, seeds and collapses (Monte Carlo over
    10^6 draws, standard error < 0.0005)."""
    z, drop = _noise(seed_sd)
    return float(np.clip(mu * point + z - drop * (point == 1.0), 0, 1).mean())


def _covers(fit: dict[str, np.ndarray], truth: float, bounds=(-math.inf, math.inf)) -> float:
    low, high = stats.t_interval(fit["mean"], fit["se"], fit["df"], bounds=bounds)
    return float(np.mean((low <= truth) & (truth <= high)))


def _p(fit: dict[str, np.ndarray]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(
            fit["se"] > 0, np.abs(fit["mean"]) / fit["se"], np.where(fit["mean"] == 0, 0, np.inf)
        )
    from scipy import stats as sps

    return 2 * sps.t.sf(t, np.where(np.isfinite(fit["df"]), fit["df"], 1e9))


def test_crossed_is_the_vectorised_fit_and_handles_missing_prompts() -> None:
    """`crossed` (what the report calls) equals the vectorised `anova` + `t_interval` the
    simulations use; a missing clip drops that prompt for every seed; unequal prompt counts fall
    back to seed means (seed-level t); one seed is a prompt-level interval that says so."""
    rng = np.random.default_rng(0)
    x = _study(rng, [0.6], 5, 32, reps=3)[:, 0, -1].astype(float)
    fit = stats.anova(x)
    low, high = stats.t_interval(fit["mean"], fit["se"], fit["df"], bounds=(0, 1))
    for r in range(3):
        e = stats.crossed(list(x[r]), (0, 1))
        assert (e.mean, e.low, e.high, e.df) == pytest.approx(
            (fit["mean"][r], low[r], high[r], fit["df"][r])
        )
        assert e.method == "crossed seed x prompt t" and (e.seeds, e.clips) == (5, 32)
    gap = x[0].copy()
    gap[2, 7] = np.nan
    e = stats.crossed(list(gap))
    assert (e.seeds, e.clips) == (5, 31) and "1 prompt(s) some seed lacks left out" in e.method
    assert e.mean == pytest.approx(np.delete(x[0], 7, axis=1).mean())
    e = stats.crossed([x[0, 0], x[0, 1, :20], x[0, 2]])
    assert e.clips == 1 and e.method.startswith("seed-level t; prompt counts differ")
    e = stats.crossed([x[0, 0]])
    assert e.seeds == 1 and "seed variation not included" in e.method and e.components is None
    assert stats.crossed([]).fmt() == "—" and stats.crossed([[0.5]]).fmt() == "0.5"
    d = stats.paired_difference(
        {0: [1.0, 0.0, 1.0], 1: [1.0, 1.0, 1.0], 7: [0.0]}, {0: [0.0, 0.0, 1.0], 1: [1.0, 0.0, 1.0]}
    )
    assert (d.seeds, d.clips) == (2, 3) and d.mean == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "seeds, prompts, seed_sd", [(3, 8, 0.1), (3, 32, 0.13), (5, 32, 0.1), (10, 128, 0.13)]
)
def test_arm_and_difference_intervals_cover_at_the_end_and_over_the_curve(
    seeds: int, prompts: int, seed_sd: float
) -> None:
    """Arm means and paired differences (masked-like arm 0.6 vs 0.7), at the end of training and
    averaged over the learning curve: coverage >= 93% (nominal 95%), and a null difference
    (two arms at 0.6) significant in at most 5% + 3 SE of replications."""
    rng = np.random.default_rng(seeds * 1000 + prompts)
    y = _study(rng, [0.6, 0.7, 0.6], seeds, prompts, seed_sd)
    final, curve = (
        y[:, :, -1],
        y.mean(2),
    )  # curve: per (seed, prompt), the mean over the curve's points
    truth_final = [_truth(mu, seed_sd) for mu in (0.6, 0.7)]
    truth_curve = [float(np.mean([_truth(mu, seed_sd, p) for p in POINTS])) for mu in (0.6, 0.7)]
    rates = {}
    for name, data, truth in (("final", final, truth_final), ("curve", curve, truth_curve)):
        rates[f"{name} arm"] = _covers(stats.anova(data[:, 0]), truth[0], (0, 1))
        rates[f"{name} diff"] = _covers(
            stats.anova(data[:, 1] - data[:, 0]), truth[1] - truth[0], (-1, 1)
        )
        rates[f"{name} null fp"] = float(np.mean(_p(stats.anova(data[:, 2] - data[:, 0])) <= 0.05))
    print(seeds, prompts, seed_sd, rates)
    assert min(v for k, v in rates.items() if "fp" not in k) >= COVERAGE_MIN, rates
    assert max(v for k, v in rates.items() if "fp" in k) <= FP_MAX, rates


def test_family_wise_false_positives_of_the_verdict_under_the_null() -> None:
    """path_shape's verdict under the complete null (4 equal arms, 5 seeds x 32 prompts): the
    primary (arm 1 at the end, uncorrected) is significant in <= 5% + 3 SE; any of the 5
    Holm-corrected secondaries (arms 2, 3 at the end; arms 1-3 over the curve) in <= 5% + 3 SE;
    and the Bonferroni-adjusted secondary intervals cover all 5 true differences (0) jointly in
    >= 93%."""
    rng = np.random.default_rng(7)
    y = _study(rng, [0.6] * 4, 5, 32, 0.1)
    final, curve = y[:, :, -1], y.mean(2)
    fits = [stats.anova(final[:, a] - final[:, 0]) for a in (1, 2, 3)]
    fits += [stats.anova(curve[:, a] - curve[:, 0]) for a in (1, 2, 3)]
    primary = _p(fits[0]) <= 0.05
    secondary = np.stack([_p(f) for f in fits[1:]], 1)
    adjusted = np.array([stats.holm(list(row)) for row in secondary])
    any_false = (adjusted <= 0.05).any(1)
    joint = np.ones(N, bool)
    for f in fits[1:]:
        low, high = stats.t_interval(
            f["mean"], f["se"], f["df"], level=1 - 0.05 / 5, bounds=(-1, 1)
        )
        joint &= (low <= 0) & (0 <= high)
    print(
        "primary fp",
        primary.mean(),
        "secondary family-wise fp",
        any_false.mean(),
        "joint cover",
        joint.mean(),
    )
    assert primary.mean() <= FP_MAX and any_false.mean() <= FP_MAX
    assert joint.mean() >= COVERAGE_MIN


def test_steps_to_and_the_change_of_a_gap_are_calibrated() -> None:
    """Run-level statistics: steps to alignment 0.45 (interpolated on each run's 4-point curve),
    one value per run, seed-level t paired by seed; and the interaction (the gap at 16 frames
    minus the gap at 4 frames, both null): each significant in <= 5% + 3 SE, 3 seeds."""
    rng = np.random.default_rng(3)
    y = _study(rng, [0.55, 0.55, 0.6, 0.6], 3, 32, 0.13)
    per_run = y.mean(-1)  # (reps, arms, points, seeds): a run's curve, mean over prompts
    steps = np.array(
        [
            [
                [
                    comparison.steps_to(list(zip(STEPS, per_run[r, a, :, s])), 0.45, True)[0]
                    for s in range(3)
                ]
                for a in range(2)
            ]
            for r in range(N)
        ]
    )
    fp_steps = float(np.mean(_p(stats.seed_t(steps[:, 1] - steps[:, 0])) <= 0.05))
    final = y[:, :, -1]
    did = (final[:, 3] - final[:, 2]) - (final[:, 1] - final[:, 0])  # frames 16 gap - frames 4 gap
    fp_did = float(np.mean(_p(stats.anova(did)) <= 0.05))
    print("steps_to fp", fp_steps, "difference of differences fp", fp_did)
    assert fp_steps <= FP_MAX and fp_did <= FP_MAX


def test_the_change_of_a_slope_contrast_covers_and_holds_its_false_positive_rate() -> None:
    """`stats.contrast` with slope weights in log shift, long minus short (the timestep_shift
    question "does the best shift grow with tokens per clip": the metric's slope against log
    shift tilts up at the longer length): 5 shifts x 2 lengths, 4 seeds x 32 prompts. With a
    tilt the interval covers the true change of slope (Monte Carlo truth, SE < 0.001) in >= 93%
    of replications; with equal slopes it is significant in <= 5% + 3 SE. One replication through
    `stats.contrast` equals the vectorised fit used for the rates."""
    shifts = [0.5, 1.0, 2.0, 3.0, 5.0]
    w = stats.slope_weights(list(np.log(shifts)))
    weights = [-v for v in w] + w  # long minus short
    short = [0.50, 0.56, 0.60, 0.57, 0.50]
    rng = np.random.default_rng(21)
    for long, expect in (([0.40, 0.48, 0.58, 0.62, 0.60], "tilt"), (short, "null")):
        y = _study(rng, short + long, 4, 32, 0.1)[:, :, -1]  # (reps, 10 arms, seeds, prompts)
        x = np.tensordot(y, np.asarray(weights, np.float32), axes=([1], [0]))  # (reps, S, P)
        fit = stats.anova(x)
        one = stats.contrast([{s: y[0, a, s] for s in range(4)} for a in range(10)], weights)
        assert math.isclose(one.mean, float(fit["mean"][0]), abs_tol=1e-6)
        assert math.isclose(one.se, float(fit["se"][0]), rel_tol=1e-5)
        truth = sum(wk * _truth(mu) for wk, mu in zip(weights, short + long))
        if expect == "tilt":
            coverage = _covers(fit, truth)
            print(f"change of slope {truth:+.4f}: coverage {coverage:.3f}")
            assert truth > 0.02 and coverage >= COVERAGE_MIN
        else:
            fp = float(np.mean(_p(fit) <= 0.05))
            print(f"change of slope 0: false positives {fp:.3f}")
            assert fp <= FP_MAX
    with pytest.raises(ValueError, match="one weight per cell"):
        stats.contrast([{0: np.zeros(3)}], [1.0, -1.0])
    with pytest.raises(ValueError, match="two distinct"):
        stats.slope_weights([1.0, 1.0])


def test_minimum_detectable_effect_has_the_power_it_claims() -> None:
    """Components.mde from one pilot's fit: simulating a true difference equal to it, the test
    is significant in 80% +- 0.07 of replications (the MDE is a t approximation, and the pilot's
    components are estimates); and the power to detect +0.085 at 5 seeds x 32 prompts (the main
    job's end-of-training gap) is recorded."""
    rng = np.random.default_rng(11)
    pilot = _study(rng, [0.6, 0.6], 5, 32, 0.1, reps=200)[:, :, -1]
    fit = stats.anova(pilot[:, 1] - pilot[:, 0])
    comps = stats.Components(
        *(float(np.median(fit[k])) for k in ("seed", "prompt", "residual")), 5, 32
    )
    mde = comps.mde()
    shift = _truth(0.6 + mde) - _truth(0.6)
    mu = 0.6 + mde * mde / shift  # an arm whose true (clipped) difference is the MDE
    y = _study(rng, [0.6, mu, 0.685], 5, 32, 0.1)[:, :, -1]
    power = float(np.mean(_p(stats.anova(y[:, 1] - y[:, 0])) <= 0.05))
    observed = float(np.mean(_p(stats.anova(y[:, 2] - y[:, 0])) <= 0.05))
    print(
        f"MDE {mde:.3f}: power {power:.3f}; power at +0.085: {observed:.3f}; seeds for +0.085:",
        comps.seeds_for(0.085),
    )
    assert abs(power - 0.8) <= 0.07
    assert comps.seeds_for(mde) in (4, 5, 6) and comps.seeds_for(mde / 3) > 20
    assert (
        stats.Components(0.0, 0.5, 0.0, 5, 8).seeds_for(0.01) is None
    )  # the prompt term alone is too large


def test_holm_matches_the_step_down_definition() -> None:
    assert stats.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx(
        [0.03, 0.06, 0.06, math.nan], nan_ok=True
    )
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def _runs(
    gaps: dict[int, float], seeds: range = range(5), with_metric: bool = True
) -> pd.DataFrame:
    """Result rows without clip files (one value per run): masked and metric per frames value."""
    rows = []
    for frames, gap in gaps.items():
        for kind in ("masked", "metric"):
            for seed in seeds:
                jitter = 0.02 * ((seed * 7 + frames) % 5) + 0.01 * (
                    (seed * 3 + frames // 4 + 2 * (kind == "metric")) % 4
                )
                value = 0.4 + (gap if kind == "metric" else 0.0) + jitter
                rows.append(
                    {
                        "arm": f"path.kind={kind}, frames={frames}, speed={1 / frames:g}",
                        "seed": seed,
                        "state": "done",
                        "reference": None,
                        "run_dir": "/nonexistent",
                        "param.frames": float(frames),
                        **({"metric.alignment": value} if with_metric else {}),
                    }
                )
    return pd.DataFrame(rows)


def test_compare_within_tests_the_change_of_the_gap_as_its_primary() -> None:
    """The interaction claim is a test on the difference of differences (paired by seed), not a
    comparison of two intervals; per-length gaps are Holm-corrected secondaries."""
    out = comparison.compare_within(
        _runs({4: 0.0, 8: 0.1, 16: 0.3}), "alignment", "path.kind=masked", "frames", ("speed",)
    )
    first = out.verdicts[0]
    assert first.startswith(
        "Primary endpoint (report.primary not set: report.headline at the end of training): "
        "the change of the gap against the baseline along frames"
    )
    assert "path.kind=metric from 4 -> 16: +0.3 [+0.2" in first and "significant" in first
    assert not any("overlap" in v for v in out.verdicts)
    prim = [c for c in out.claims if c.primary]
    assert len(prim) == 1 and prim[0].interaction and prim[0].difference.seeds == 5
    secondary = [c for c in out.claims if not c.primary]
    assert secondary and all(
        math.isfinite(c.p_adj) for c in secondary if math.isfinite(c.difference.p)
    )
    assert any(v.startswith("frames=4. At the end of training (secondary)") for v in out.verdicts)


def test_compare_within_adds_the_change_of_a_slope_as_a_secondary_claim() -> None:
    """report.trend: the slope of the metric against log shift at 4 frames minus that at 1 frame
    (a contrast paired by seed), here with the best shift moving from 1 to 3; the resolution-rule
    arm is kept out by `arms` (matched on the axis values behind the arms' zip labels), and a
    trend axis the runs lack is a sentence."""
    from harness.spec import TrendConfig

    peak = {1: {0.5: 0.5, 1.0: 0.6, 3.0: 0.5}, 4: {0.5: 0.3, 1.0: 0.45, 3.0: 0.6}}
    rows = []
    for frames, by_shift in peak.items():
        for shift, mu in [*by_shift.items(), (1.0, 0.2)]:
            rule = "fixed" if (shift, mu) != (1.0, 0.2) else "resolution"
            for seed in range(5):
                name = f"shift {shift:g}" if rule == "fixed" else "resolution rule"  # zip labels
                rows.append(
                    {
                        "arm": f"frames={frames}, {name}",
                        "seed": seed,
                        "state": "done",
                        "reference": None,
                        "run_dir": "/nonexistent",
                        "param.frames": frames,
                        "param.shift": shift,
                        "param.rule": rule,
                        "metric.alignment": mu + 0.03 * ((seed * 5 + frames + int(4 * shift)) % 4),
                    }
                )
    df = pd.DataFrame(rows)
    trend = TrendConfig(axis="shift", arms="rule=fixed")
    out = comparison.compare_within(df, "alignment", "shift 1", "frames", (), None, trend)
    slope = [c for c in out.claims if c.slope]
    assert len(slope) == 1 and not slope[0].primary and slope[0].interaction  # no curve files
    final = slope[0]
    w = stats.slope_weights([math.log(0.5), 0.0, math.log(3.0)])
    truth = sum(wk * (peak[4][x] - peak[1][x]) for wk, x in zip(w, (0.5, 1.0, 3.0)))
    assert abs(final.difference.mean - truth) < 0.03 and final.difference.low > 0
    assert (
        final.call() == "the slope rises, significant" and "(change of the slope)" in final.label()
    )
    assert any("slope in log shift 1 -> 4" in v for v in out.verdicts)
    missing = comparison.compare_within(
        df, "alignment", "shift 1", "frames", (), None, TrendConfig(axis="lr")
    )
    assert not any(c.slope for c in missing.claims)
    assert any("report.trend.axis 'lr' is no axis of the runs" in v for v in missing.verdicts)


def test_no_run_with_the_metric_and_an_unmatched_baseline_are_sentences_not_errors() -> None:
    out = comparison.headline_comparison(
        _runs({4: 0.1}, with_metric=False), "alignment", "path.kind=masked"
    )
    assert (
        out.verdicts == ["No finished run reports the headline metric 'alignment'."]
        and out.claims == []
    )
    out = comparison.headline_comparison(_runs({4: 0.1}), "alignment", "path.kind=absorbing")
    assert "matches no arm with results" in out.verdicts[0] and out.claims == []
    out = comparison.headline_comparison(_runs({4: 0.1}), "alignment", None)
    assert any("report.baseline is not set: the first arm" in v for v in out.verdicts)


@pytest.mark.parametrize("gap, agree, sign", [(0.09, 1, "yes"), (-0.1, 0, "no")])
def test_agreement_of_a_replicate_reports_sign_overlap_and_pooled_estimate(
    gap: float, agree: int, sign: str
) -> None:
    original = _runs({4: 0.1})
    replicate = _runs({4: gap}, seeds=range(11, 16))
    comps = [
        comparison.headline_comparison(d, "alignment", "path.kind=masked")
        for d in (original, replicate, pd.concat([original, replicate], ignore_index=True))
    ]
    text, table = comparison.agreement(*comps, "11, 12, 13, 14, 15")
    assert text.startswith(
        f"Replicate on fresh seeds 11, 12, 13, 14, 15: {agree} of 1 claims agree"
    )
    assert list(table["same sign"]) == [sign] and "Primary: original +0.1" in text
    pooled = comps[2].claims[0].difference
    assert pooled.seeds == 10 and pooled.mean == pytest.approx(
        (comps[0].claims[0].difference.mean + comps[1].claims[0].difference.mean) / 2
    )


def test_compare_within_a_crossed_axis_pairs_each_arm_with_the_baseline_of_its_own_setting() -> (
    None
):
    """Length crossed with speed (2 x 2, both paths): masked at speed 0.5 scores 0.3 lower than at
    speed 1, so pairing metric at speed 0.5 with masked at speed 1 would show a gap of -0.2
    instead of +0.1. Each gap pairs arms of one speed, and the change of the gap along frames is
    tested once per speed."""
    true_gap = {(4, 1.0): 0.1, (4, 0.5): 0.1, (8, 1.0): 0.1, (8, 0.5): 0.3}
    rows = []
    for (frames, speed), gap in true_gap.items():
        for kind in ("masked", "metric"):
            for seed in range(5):
                value = (
                    0.5
                    - 0.3 * (speed == 0.5)
                    + (gap if kind == "metric" else 0.0)
                    + 0.01 * ((seed * 3 + frames) % 4)
                )
                rows.append(
                    {
                        "arm": f"path.kind={kind}, frames={frames}, speed={speed:g}",
                        "seed": seed,
                        "state": "done",
                        "reference": None,
                        "run_dir": "/nonexistent",
                        "param.path.kind": kind,
                        "param.frames": float(frames),
                        "param.speed": speed,
                        "metric.alignment": value,
                    }
                )
    out = comparison.compare_within(pd.DataFrame(rows), "alignment", "path.kind=masked", "frames")
    final = {
        (c.arm, c.where): c.difference.mean
        for c in out.claims
        if c.statistic == "final" and not c.interaction
    }
    assert final == pytest.approx(
        {
            ("path.kind=metric, speed=1", "frames=4"): 0.1,
            ("path.kind=metric, speed=0.5", "frames=4"): 0.1,
            ("path.kind=metric, speed=1", "frames=8"): 0.1,
            ("path.kind=metric, speed=0.5", "frames=8"): 0.3,
        },
        abs=0.03,
    )
    prim = {c.arm: c.difference.mean for c in out.claims if c.primary}
    assert prim == pytest.approx(
        {"path.kind=metric, speed=1": 0.0, "path.kind=metric, speed=0.5": 0.2}, abs=0.03
    )
    assert "Holm-corrected over 2 arms" in out.verdicts[0]
    assert sum(v.startswith("frames=8. At the end of training") for v in out.verdicts) == 2


def test_a_contrast_of_equal_cells_is_no_difference_not_a_rounding_error() -> None:
    """A metric at its ceiling in every arm (palette_fidelity 1.0): the slope contrast sums to
    ~1e-15 per (seed, prompt) with no spread; that is a difference of 0 with p 1, never a
    significant slope. A constant non-zero difference stays significant."""
    cells = [{s: np.ones(8) for s in range(4)} for _ in range(3)]
    w = stats.slope_weights([math.log10(n) for n in (74e3, 296e3, 788e3)])
    slope = stats.contrast(cells, w)
    assert slope.mean == 0.0 and slope.p == 1.0 and slope.low == slope.high == 0.0
    shifted = stats.contrast(
        [{s: np.ones(8) for s in range(4)}, {s: np.zeros(8) for s in range(4)}], [1, -1]
    )
    assert shifted.mean == 1.0 and shifted.p == 0.0
