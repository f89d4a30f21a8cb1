"""Statistical and exactness tests for ursa.paths (CPU, fast)."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from scipy.stats import chisquare

from ursa.calibration import mean_corruption_distance
from ursa.path_config import (
    PATHS,
    MaskedPathConfig,
    MetricPathConfig,
    MixturePathConfig,
    PathConfig,
    build_path,
)
from ursa.paths import MaskedPath, MetricPath, MixturePath
from ursa.schedule import beta_dot, shift_time

N_DRAWS = 20_000


def codebook(k: int = 50, d: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- sampling statistics ----------------------------------------------------------------------
@pytest.mark.parametrize("t", [0.0, 1e-6])
def test_metric_near_noise_is_uniform(t: float) -> None:
    path = MetricPath(codebook(50))
    x1 = torch.full((N_DRAWS,), 7)
    counts = torch.bincount(path.sample(x1, t, gen(1)), minlength=50)
    # chi-square goodness of fit to uniform over K = 50 states; reject only at p < 1e-3
    assert chisquare(counts.numpy()).pvalue > 1e-3


def test_metric_near_data_returns_x1() -> None:
    path = MetricPath(codebook(50))
    x1 = torch.randint(50, (N_DRAWS,), generator=gen(2))
    hit = (path.sample(x1, 0.999, gen(3)) == x1).float().mean().item()
    assert hit >= 0.99, f"P(x_t = x1) at t = 0.999 is {hit}, expected >= 0.99"
    assert torch.equal(path.sample(x1, 1.0, gen(3)), x1)  # t = 1 exactly is clean


def test_metric_mean_distance_strictly_decreases() -> None:
    emb = codebook(200, 6)
    path = MetricPath(emb)
    grid = torch.linspace(0, 1, 11)
    d = mean_corruption_distance(path, emb, grid, n=N_DRAWS, generator=gen(4))
    # consecutive gaps are ~0.1-0.4 while the standard error at 20k draws is < 0.01
    assert bool((d[1:] < d[:-1]).all()), d
    assert d[-1] == 0 and abs(d[0] - path.uniform_distance()) < 0.02


@pytest.mark.parametrize("t", [0.25, 0.6])
def test_mixture_keeps_x1_with_probability(t: float) -> None:
    k = 10
    x1 = torch.randint(k, (N_DRAWS,), generator=gen(5))
    p = t + (1 - t) / k
    got = (MixturePath(k).sample(x1, t, gen(6)) == x1).float().mean().item()
    tol = 4 * math.sqrt(p * (1 - p) / N_DRAWS)  # 4 binomial standard errors
    assert abs(got - p) < tol, (got, p, tol)


@pytest.mark.parametrize("t", [0.25, 0.6])
def test_masked_masks_with_probability(t: float) -> None:
    path = MaskedPath(10)
    x1 = torch.randint(10, (N_DRAWS,), generator=gen(7))
    xt = path.sample(x1, t, gen(8))
    masked = xt == path.mask_id
    tol = 4 * math.sqrt(t * (1 - t) / N_DRAWS)  # 4 binomial standard errors
    assert abs(masked.float().mean().item() - (1 - t)) < tol
    assert torch.equal(xt[~masked], x1[~masked])


# -- velocity ---------------------------------------------------------------------------------
def test_metric_velocity_is_kinetic_optimal() -> None:
    path = MetricPath(codebook(40), c=2.0, alpha=0.8)
    x1 = torch.randint(40, (3, 50), generator=gen(9))
    xt = torch.randint(40, (3, 50), generator=gen(10))
    t = torch.tensor([0.2, 0.5, 0.9])[:, None]
    u = path.velocity(xt, x1, t)
    assert u.shape == (3, 50, 40) and bool((u >= 0).all())
    assert bool((u.gather(-1, xt[..., None]) == 0).all())
    # u(x) = beta_dot p_t(x|x1) max(0, d(x_t, x1) - d(x, x1)) within float32 rounding
    d = path.distances_to(x1)
    d0 = d.gather(-1, xt[..., None])
    want = beta_dot(t, 2.0, 0.8)[..., None].float() * path.probs(x1, t) * (d0 - d).clamp(min=0)
    torch.testing.assert_close(u, want, rtol=1e-4, atol=1e-6)
    assert not bool(path.velocity(x1, x1, t).any())  # x_t = x1: nothing moves
    assert not bool(path.velocity(xt, x1, 1.0).any())  # t = 1: clean


def test_metric_alpha_below_one_at_t0() -> None:
    path = MetricPath(codebook(40), alpha=0.5)
    x1 = torch.randint(40, (2000,), generator=gen(11))
    xt = path.sample(x1, 0.0, gen(12))
    u = path.velocity(xt, x1, 0.0)
    assert not bool(u.isnan().any()) and bool((u >= 0).all()) and bool(u.isinf().any())
    # step integrates the infinite rate: beta_h is finite, so some tokens move but not all
    moved = (path.step(xt, x1, 0.0, 0.01, gen(13)) != xt).float().mean().item()
    assert 0.0 < moved < 0.9, moved


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_mixture_and_masked_velocity(exponent: float) -> None:
    k, t = 12, torch.tensor([0.1, 0.7])[:, None]
    x1 = torch.randint(k, (2, 30), generator=gen(14))
    rate = exponent * t ** (exponent - 1) / (1 - t**exponent)  # kappa_dot / (1 - kappa)
    mix = MixturePath(k, exponent)
    xt = mix.sample(x1, 0.0, gen(15))
    u = mix.velocity(xt, x1, t)
    want = torch.where(xt != x1, rate, 0.0)[..., None] * torch.nn.functional.one_hot(x1, k)
    torch.testing.assert_close(u, want.float())
    masked = MaskedPath(k, exponent)
    xt = masked.sample(x1, 0.5, gen(16))
    u = masked.velocity(xt, x1, t)
    want = torch.where(xt == k, rate, 0.0)[..., None] * torch.nn.functional.one_hot(x1, k + 1)
    torch.testing.assert_close(u, want.float())  # only masked tokens move, only to x1


# -- oracle CTMC steps ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["metric", "mixture", "masked"])
def test_oracle_steps_reach_x1(kind: str) -> None:
    emb = codebook(100, 6)
    path = build_path(kind, vocab_size=100, embeddings=emb)
    metric = MetricPath(emb)
    x1 = torch.randint(100, (4000,), generator=gen(17))
    g = gen(18)
    x = path.sample(x1, 0.0, g)
    grid = [shift_time(k / 25, 3.0) for k in range(26)]

    def mean_dist(x: torch.Tensor) -> float:  # mask counts as D(0), as in mean_corruption_distance
        d = metric.distance(x.clamp(max=99), x1)
        return torch.where(x >= 100, metric.uniform_distance(), d).mean().item()

    dists = [mean_dist(x)]
    for k in range(24):
        x = path.step(x, x1, grid[k], grid[k + 1] - grid[k], g)
        dists.append(mean_dist(x))
    before_last = dists[-1]
    x = x1.clone()  # the sampler's last step sets x = x1_hat (= x1 for the oracle)
    assert torch.equal(x, x1)
    # the distance falls along the way: non-increasing every 4 steps (4000 tokens), and most of
    # the way to 0 before the final assignment
    assert all(b <= a + 1e-6 for a, b in zip(dists[::4], dists[4::4])), dists
    assert before_last < 0.3 * dists[0], dists


# -- chunking ---------------------------------------------------------------------------------
def test_chunked_equals_unchunked_bitwise() -> None:
    emb = codebook(300, 6)
    x1 = torch.randint(300, (3, 4, 3, 4), generator=gen(19))
    xt = torch.randint(300, (3, 4, 3, 4), generator=gen(20))
    t = torch.rand(3, 4, 1, 1, generator=gen(21)) * 0.9
    t[0, 0] = 1.0  # clean frames are skipped inside the chunk loop
    h = 0.05
    ref = MetricPath(emb, chunk_size=10**6)
    for cs in (1, 3, 7, 64):
        path = MetricPath(emb, chunk_size=cs)
        assert torch.equal(path.sample(x1, t, gen(22)), ref.sample(x1, t, gen(22))), cs
        assert torch.equal(path.velocity(xt, x1, t), ref.velocity(xt, x1, t)), cs
        assert torch.equal(path.probs(x1, t), ref.probs(x1, t)), cs
        assert torch.equal(path.step(xt, x1, t, h, gen(23)), ref.step(xt, x1, t, h, gen(23))), cs
    stepped = ref.step(xt, x1, t, h, gen(23))
    assert torch.equal(stepped[0, 0], xt[0, 0])  # clean (t = 1) tokens never move
    assert not torch.equal(stepped, xt)


def test_step_and_sample_are_seeded() -> None:
    path = MetricPath(codebook(100))
    x1 = torch.randint(100, (500,), generator=gen(24))
    assert torch.equal(path.sample(x1, 0.3, gen(25)), path.sample(x1, 0.3, gen(25)))
    assert not torch.equal(path.sample(x1, 0.3, gen(25)), path.sample(x1, 0.3, gen(26)))


# -- bad input --------------------------------------------------------------------------------
def _raises(fn, *words: str) -> None:
    with pytest.raises(ValueError) as err:
        fn()
    msg = str(err.value)
    assert all(w in msg for w in ("expected", "got", *words)), msg


def test_bad_input_raises_value_error() -> None:
    path = MetricPath(codebook(50))
    x1 = torch.randint(50, (4, 5), generator=gen(27))
    _raises(lambda: path.sample(x1.float(), 0.5), "x1")
    _raises(lambda: path.sample(x1 + 50, 0.5), "x1", "[0, 50)")
    _raises(lambda: path.sample(x1, 1.5), "t", "[0, 1]")
    _raises(lambda: path.sample(x1, torch.tensor([-0.1])), "t")
    _raises(lambda: path.sample(x1, torch.zeros(3)), "t", "broadcastable")
    _raises(lambda: path.sample(x1, torch.zeros(4, 5, dtype=torch.long)), "t")
    _raises(lambda: path.velocity(x1[:2], x1, 0.5), "x_t")
    _raises(lambda: path.step(x1, x1, 0.9, 0.2), "h", "t + h")
    _raises(lambda: MetricPath(torch.randn(10)), "embeddings", "2-D")
    _raises(lambda: MetricPath(torch.randint(5, (10, 3))), "embeddings")
    _raises(lambda: MetricPath(torch.zeros(10, 3)), "embeddings", "non-zero")
    _raises(lambda: MetricPath(torch.full((10, 3), float("nan"))), "embeddings", "non-finite")
    _raises(lambda: MetricPath(codebook(50), chunk_size=0), "chunk_size")
    _raises(
        lambda: build_path("metric", vocab_size=60, embeddings=codebook(50)), "embeddings", "60"
    )
    _raises(lambda: build_path("diffusion", vocab_size=50), "kind")
    _raises(
        lambda: MaskedPath(10).velocity(
            torch.full((3,), 11), torch.zeros(3, dtype=torch.long), 0.5
        ),
        "x_t",
    )


def test_build_path_kinds() -> None:
    assert isinstance(build_path("metric", vocab_size=50, embeddings=codebook(50)), MetricPath)
    mix, masked = build_path("mixture", vocab_size=50), build_path("masked", vocab_size=50)
    assert isinstance(mix, MixturePath) and mix.num_states == 50
    assert isinstance(masked, MaskedPath) and masked.num_states == 51 and masked.mask_id == 50


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({}, MetricPathConfig),
        ({"kind": "mixture"}, MixturePathConfig),
        ({"kind": "masked", "exponent": 2}, MaskedPathConfig),
    ],
)
def test_path_config_is_the_registered_config_of_its_kind(data: dict, cls: type) -> None:
    config = PathConfig.model_validate(data)
    assert type(config) is cls and PATHS[config.kind] is cls
    assert (
        PathConfig.model_validate(config.model_dump()) == config
    )  # round trip through a run's config.json
    assert config.mask_token == (config.kind == "masked")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"kind": "masked", "c": 3.0}, "c"),
        ({"exponent": 2.0}, "exponent"),
        ({"kind": "mixture", "calibrate": True}, "calibrate"),
        ({"kind": "diffusion"}, "kind"),
    ],
)
def test_a_key_of_another_kind_is_refused(data: dict, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        PathConfig.model_validate(data)
    assert info.value.errors()[0]["loc"] == (key,)


def test_calibrated_metric_config_fits_c_alpha_and_builds_with_them() -> None:
    emb = codebook(40, 4)
    config = PathConfig.model_validate({"calibrate": True})
    fitted = config.fit(emb)
    assert set(fitted) == {"c", "alpha"} and PathConfig.model_validate({}).fit(emb) == {}
    path = config.model_copy(update=fitted).build(40, emb)
    assert (path.c, path.alpha) == (fitted["c"], fitted["alpha"])


def test_sources_the_sampler_starts_from() -> None:
    masked, mixture = build_path("masked", vocab_size=8), build_path("mixture", vocab_size=8)
    assert torch.equal(masked.source((2, 3)), torch.full((2, 3), 8))
    want = torch.randint(8, (2, 3), generator=gen(4))  # the uniform draw the sampler always made
    assert torch.equal(mixture.source((2, 3), gen(4)), want)


def test_zero_row_is_equidistant_like_f_normalize():
    """FSQ grids contain the all-zero code: it stays zero after normalisation (F.normalize
    semantics), so d(zero, y) = 2 for every y != zero, d(zero, zero) = 0, and D(0) stays exact."""
    from ursa.tokenizers.fsq import fsq_codebook

    codes = fsq_codebook((4, 3))  # K = 12, contains the all-zero code
    zero = int((codes.norm(dim=1) == 0).nonzero())
    path = MetricPath(codes)
    d = path.distances_to(torch.tensor([zero]))[0]
    others = torch.arange(12) != zero
    assert torch.equal(d[others], torch.full((11,), 2.0)) and d[zero] == 0
    # exact D(0) against brute force over all K^2 pairs (float32 distances: tolerance 1e-6)
    brute = path.distances_to(torch.arange(12)).double().mean()
    assert abs(path.uniform_distance() - float(brute)) < 1e-6
    # the path still concentrates on the zero code near t = 1 (>= 99% of 20k draws)
    x1 = torch.full((20_000,), zero)
    assert (path.sample(x1, 0.999, generator=gen(3)) == zero).float().mean() > 0.99


def _paths() -> list:
    emb = torch.randn(24, 5, generator=torch.Generator().manual_seed(3))
    return [
        MetricPath(emb, chunk_size=7),
        build_path("mixture", vocab_size=24),
        build_path("masked", vocab_size=24),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_part_of_a_batch_wide_draw_and_the_unvalidated_path_equal_the_whole_bitwise(
    index: int,
) -> None:
    """A process corrupts its clips of a batch-wide draw exactly as the whole batch would be
    (`noise` = its slice of `draw`), and `validate=False` (no host reads: MetricPath then runs
    every token in fixed chunks, clean ones included) gives the same ids, bitwise."""
    path = _paths()[index]
    g = torch.Generator().manual_seed(1)
    x1 = torch.randint(0, 24, (4, 3, 2, 5), generator=g)
    t = torch.rand(4, 3, 1, 1, generator=g)
    t[:, 0] = 1.0  # clean frames stay x1
    t[1, 2] = 0.0
    whole = path.sample(x1, t, generator=torch.Generator().manual_seed(9))
    noise = path.draw(x1.numel(), torch.Generator().manual_seed(9))
    per = x1[0].numel()
    for lo, hi in ((0, 1), (1, 3), (3, 4)):
        part = tuple(u[lo * per : hi * per] for u in noise)
        for validate in (True, False):
            got = path.sample(x1[lo:hi], t[lo:hi], noise=part, validate=validate)
            assert torch.equal(got, whole[lo:hi]), (lo, hi, validate)
    assert torch.equal(whole[:, 0], x1[:, 0])
    with pytest.raises(ValueError, match="noise: expected tensors of leading size 30"):
        path.sample(x1[:1], t[:1], noise=noise)
