"""Scorer validity: the reference generators must land where the issue says, deterministically."""

import pytest

from benchmarks.shapes.generators import generate_reference
from benchmarks.shapes.prompts import load_suite
from benchmarks.shapes.scorers.alignment import chance_alignment
from benchmarks.shapes.scoring import score

N = 120


@pytest.fixture(scope="module")
def reports(shapes_tokenizer, shapes_cache):
    prompts, train = load_suite("eval", N, 0), load_suite("train", 256, 0)
    return prompts, {
        g: score(
            generate_reference(g, prompts, shapes_tokenizer, seed=0, train=train),
            prompts,
            seed=0,
            cache_dir=shapes_cache,
        )
        for g in ("real", "reconstruction", "static", "memoriser", "shuffled", "random")
    }


def test_alignment_validity(reports):
    prompts, r = reports
    assert r["real"].metrics["alignment"] >= 0.98
    assert r["real"].metrics["palette_fidelity"] >= 0.99
    assert r["reconstruction"].metrics["alignment"] >= 0.98
    # degenerate samples: each gets most questions right (DPG mean > 0.7) but not the whole caption
    for g in ("static", "memoriser"):
        assert r[g].metrics["alignment"] <= 0.5 < 0.7 <= r[g].metrics["alignment_dpg"], g
    assert r["shuffled"].metrics["alignment"] <= 0.1
    chance = chance_alignment(prompts)  # no-object detections: exactly 0 under the dependency rule
    assert abs(r["random"].metrics["alignment"] - chance) <= 0.05


def test_quality_orders_real_above_random(reports):
    _, r = reports
    for k in ("temporal_flickering", "subject_consistency", "motion_smoothness", "clean_fraction"):
        assert r["real"].metrics[k] >= r["random"].metrics[k] + 0.2, k
    assert r["real"].metrics["dynamic_degree"] > 0.8  # 4 of 5 motions move; tolerance for sampling


def test_fidelity_ordering(reports):
    _, r = reports
    real, recon, rand = (r[g].metrics for g in ("real", "reconstruction", "random"))
    for level in ("frame", "clip"):
        # real vs held-out real is the sampling-noise floor; random must be far above it
        assert rand[f"fid_{level}"] > 20 * real[f"fid_{level}"], level
        assert rand[f"precision_{level}"] < 0.1 < real[f"precision_{level}"], level
        # the tokenizer is ~lossless (0.03% pixels differ): reconstructions stay within 10% of the floor
        assert abs(recon[f"fid_{level}"] - real[f"fid_{level}"]) <= 0.1 * real[f"fid_{level}"], (
            level
        )


def test_rows_and_determinism(reports, shapes_tokenizer, shapes_cache):
    prompts, r = reports
    assert len(r["real"].rows) == N and r["real"].rows[0]["caption"] == prompts[0].caption
    again = score(
        generate_reference("random", prompts, shapes_tokenizer, seed=0),
        prompts,
        seed=0,
        cache_dir=shapes_cache,
    )
    assert again.metrics == r["random"].metrics


@pytest.mark.parametrize(
    "suite,metric,real_value,floor_max",
    [
        ("i2v", "identity_persistence", 1.0, 0.5),
        ("interpolation", "identity_persistence", 1.0, 0.5),
        ("extrapolation", "continuation_consistency", 1.0, 0.2),
        ("long", "long_alignment_last", 1.0, 0.4),
    ],
)
def test_task_metrics(shapes_tokenizer, suite, metric, real_value, floor_max):
    prompts = load_suite(suite, 30, 0)
    m = {
        g: score(
            generate_reference(g, prompts, shapes_tokenizer, seed=0),
            prompts,
            which=("alignment", "tasks"),
        ).metrics
        for g in ("real", "shuffled", "random")
    }
    assert m["real"][metric] == real_value
    assert m["shuffled"][metric] <= floor_max and m["random"][metric] <= floor_max


def test_bad_input(reports):
    prompts, _ = reports
    good = generate_reference("real", prompts)
    with pytest.raises(ValueError, match="videos"):
        score(good.float(), prompts, which=("alignment",))
    with pytest.raises(ValueError, match="videos"):
        score(good[:, :4], prompts, which=("alignment",))
    with pytest.raises(ValueError, match="which"):
        score(good, prompts, which=("beauty",))
    with pytest.raises(ValueError, match="prompts"):
        score(good, ["a small red circle"], which=("alignment",))
