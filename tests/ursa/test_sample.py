"""EulerSampler and the generation tasks, driven by an oracle denoiser and the real tiny model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.sample import (
    EulerSampler,
    SamplerConfig,
    categorical,
    extrapolate,
    guided_inputs,
    image_to_video,
    interpolate,
    long_video,
    text_to_image,
)

K, B, SHAPE = 64, 2, (3, 6, 6)


class Oracle(nn.Module):
    """URSAModel-shaped denoiser whose logits put ~all mass on a fixed x1 (B, T, h, w); records inputs."""

    def __init__(self, x1: torch.Tensor, peak: float = 40.0) -> None:
        super().__init__()
        self.x1, self.peak, self.calls = x1, peak, []

    def forward(self, text_ids, visual_ids, text_mask=None):
        self.calls.append(visual_ids.clone())
        x1 = self.x1.repeat(visual_ids.shape[0] // self.x1.shape[0], 1, 1, 1)[
            :, : visual_ids.shape[1]
        ]
        return self.peak * nn.functional.one_hot(x1, K).float()


def make_path(kind: str):
    emb = torch.randn(K, 8, generator=torch.Generator().manual_seed(0))
    return build_path(kind, vocab_size=K, embeddings=emb if kind == "metric" else None)


def text(batch: int = B, length: int = 5):
    return torch.randint(
        0, 32, (batch, length), generator=torch.Generator().manual_seed(1)
    ), torch.ones(batch, length, dtype=torch.bool)


def x1_target(seed: int = 2) -> torch.Tensor:
    return torch.randint(0, K, (B, *SHAPE), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["metric", "mixture", "masked"])
def test_oracle_reaches_x1_with_falling_distance(kind):
    path, x1 = make_path(kind), x1_target()
    oracle = Oracle(x1)
    out = EulerSampler(oracle, path, SamplerConfig(steps=25)).sample(
        *text(), SHAPE, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out, x1)
    assert len(oracle.calls) == 25

    def dist(
        x,
    ):  # metric: codebook distance; mixture/masked: fraction of tokens not at x1 (mask counts as wrong)
        return (
            path.distance(x, x1).mean().item()
            if kind == "metric"
            else (x != x1).float().mean().item()
        )

    d = [dist(x) for x in oracle.calls] + [dist(out)]
    # With x1_hat == x1 every jump lands closer to x1 (metric) or on x1 (mixture/masked): exact monotonicity.
    assert all(b <= a + 1e-6 for a, b in zip(d, d[1:])), d
    assert d[0] > 0.5 * (2.0 if kind == "metric" else 1.0) and d[-1] == 0.0
    # The input to the last model call (t_24 = 0.96) is already >= 90% at x1: expected ~96% for
    # mixture/masked (sd ~1.2% over 216 tokens), ~100% for metric.
    assert (oracle.calls[-1] == x1).float().mean() >= 0.9


def test_condition_frames_held_fixed_every_step():
    path, x1 = make_path("metric"), x1_target()
    cond = x1_target(seed=9)  # differs from the oracle's x1, so unheld frames would drift to x1
    frames = torch.tensor([[True, False, True], [False, True, False]])
    oracle = Oracle(x1)
    out = EulerSampler(oracle, path, SamplerConfig(steps=10)).sample(
        *text(),
        SHAPE,
        condition_ids=cond,
        condition_frames=frames,
        generator=torch.Generator().manual_seed(0),
    )
    for x in oracle.calls + [out]:
        assert torch.equal(x[frames], cond[frames])
    assert torch.equal(out[~frames], x1[~frames])


def tiny_model(k: int = K) -> URSAModel:
    return URSAModel(
        URSAConfig.preset("tiny", text_vocab_size=32, visual_vocab_size=k), seed=0
    ).eval()


def test_determinism_under_seed():
    sampler = EulerSampler(tiny_model(), make_path("mixture"), SamplerConfig(steps=4))
    run = lambda s: sampler.sample(*text(), (2, 4, 4), generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_cfg_scale_one_equals_no_cfg_and_formula():
    model, path = tiny_model(), make_path("metric")
    ids, mask = text()
    u_ids, u_mask = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool)
    plain = EulerSampler(model, path, SamplerConfig(steps=3)).sample(
        ids, mask, (2, 4, 4), generator=torch.Generator().manual_seed(0)
    )
    one = EulerSampler(model, path, SamplerConfig(steps=3, cfg_scale=1.0)).sample(
        ids,
        mask,
        (2, 4, 4),
        uncond_ids=u_ids,
        uncond_mask=u_mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(plain, one)
    # Guided logits from the batched (cond + right-padded uncond) forward equal
    # z_u + s (z_c - z_u) from separate forwards, to 1e-4 (float32 attention with/without padding).
    sampler = EulerSampler(model, path, SamplerConfig(cfg_scale=4.0))
    x = torch.randint(0, K, (B, 2, 4, 4), generator=torch.Generator().manual_seed(3))
    z = sampler._logits(
        ids, mask, x, guided_inputs(ids, mask, u_ids.expand(B, -1), u_mask.expand(B, -1))
    )
    with torch.no_grad():
        zc, zu = model(ids, x, mask), model(u_ids.expand(B, -1), x, u_mask.expand(B, -1))
    torch.testing.assert_close(z, zu + 4.0 * (zc - zu), atol=1e-4, rtol=1e-4)
    # guidance a few rows at a time (memory) is the same arithmetic as on the whole tensors: bitwise
    import ursa.sample as S

    whole, S.CFG_ROWS = S.CFG_ROWS, 5
    try:
        assert torch.equal(
            sampler._logits(
                ids, mask, x, guided_inputs(ids, mask, u_ids.expand(B, -1), u_mask.expand(B, -1))
            ),
            z,
        )
    finally:
        S.CFG_ROWS = whole


@pytest.mark.parametrize("trunc", [0.0, 0.5, 1.0])
def test_cfg_truncation(trunc):
    oracle, cfg = Oracle(x1_target()), SamplerConfig(steps=8, cfg_scale=3.0, cfg_trunc=trunc)
    u_ids, u_mask = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool)
    EulerSampler(oracle, make_path("mixture"), cfg).sample(
        *text(),
        SHAPE,
        uncond_ids=u_ids,
        uncond_mask=u_mask,
        generator=torch.Generator().manual_seed(0),
    )
    guided = [x.shape[0] == 2 * B for x in oracle.calls]
    assert guided == [t < trunc for t in cfg.time_grid()[:-1].tolist()]
    assert any(guided) == (trunc > 0.0)


def test_tasks_shapes_and_given_frames():
    x1 = x1_target()
    sampler = EulerSampler(Oracle(x1), make_path("masked"), SamplerConfig(steps=5))
    ids, mask = text()
    first, last = x1_target(5)[:, 0], x1_target(6)[:, 0]
    out = image_to_video(sampler, ids, mask, first, 3)
    assert out.shape == (B, *SHAPE) and torch.equal(out[:, 0], first)
    out = interpolate(sampler, ids, mask, first, last, 3)
    assert (
        torch.equal(out[:, 0], first)
        and torch.equal(out[:, 2], last)
        and torch.equal(out[:, 1], x1[:, 1])
    )
    ctx = x1_target(7)[:, :2]
    assert torch.equal(extrapolate(sampler, ids, mask, ctx, 3)[:, :2], ctx)
    assert text_to_image(sampler, ids, mask, (6, 6)).shape == (B, 1, 6, 6)


def test_long_video_window_stitching():
    x1, T, c = x1_target(), SHAPE[0], 1
    oracle = Oracle(x1)
    sampler = EulerSampler(oracle, make_path("metric"), SamplerConfig(steps=4))
    out = long_video(
        sampler,
        *text(),
        SHAPE,
        num_windows=3,
        context_frames=c,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (B, T + 2 * (T - c), 6, 6)
    windows = [out[:, :T], out[:, T - c : 2 * T - c], out[:, 2 * T - 2 * c :]]
    for n in (1, 2):  # every model input of window n carries window n-1's last c frames
        for x in oracle.calls[4 * n : 4 * (n + 1)]:
            assert torch.equal(x[:, :c], windows[n - 1][:, -c:])
        assert torch.equal(windows[n][:, c:], x1[:, c:])


def test_categorical_matches_softmax():
    logits = torch.tensor([0.0, 1.0, -1.0, float("-inf"), 2.0]).expand(20_000, 5)
    draws = categorical(logits, torch.Generator().manual_seed(0), chunk_size=3000)
    freq = torch.bincount(draws, minlength=5).float() / 20_000
    # 20k draws: sd of each frequency <= 0.0036; tolerance 0.015 (> 4 sd). Zero-probability id never drawn.
    torch.testing.assert_close(freq, torch.softmax(logits[0], -1), atol=0.015, rtol=0)
    assert freq[3] == 0


def test_bad_input_raises_value_error_naming_argument():
    sampler = EulerSampler(Oracle(x1_target()), make_path("mixture"), SamplerConfig(steps=2))
    ids, mask = text()
    with pytest.raises(ValueError, match="steps"):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError, match="text_ids"):
        sampler.sample(ids.float(), mask, SHAPE)
    with pytest.raises(ValueError, match="text_mask"):
        sampler.sample(ids, mask[:, :2], SHAPE)
    with pytest.raises(ValueError, match="latent_shape"):
        sampler.sample(ids, mask, (3, 6))
    with pytest.raises(ValueError, match="uncond_ids"):
        EulerSampler(sampler.model, sampler.path, SamplerConfig(cfg_scale=2.0)).sample(
            ids, mask, SHAPE
        )
    with pytest.raises(ValueError, match="condition_frames"):
        sampler.sample(
            ids,
            mask,
            SHAPE,
            condition_ids=x1_target(),
            condition_frames=torch.ones(B, 2, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="context_frames"):
        long_video(sampler, ids, mask, SHAPE, num_windows=2, context_frames=3)


def test_resolution_shift_rule_follows_the_generated_token_count():
    from ursa.schedule import shift_for_tokens, shift_time

    cfg = SamplerConfig(steps=4, shift=7.0, shift_rule="resolution")
    assert cfg.shift_for(64) == shift_for_tokens(64)
    want = shift_time(torch.arange(5, dtype=torch.float64) / 4, shift_for_tokens(20_000))
    torch.testing.assert_close(cfg.time_grid(20_000), want)
    assert SamplerConfig(steps=4, shift=7.0).shift_for(20_000) == 7.0


def test_guidance_switch_is_the_authors_and_below_one_is_explicit():
    """The authors guide only when guidance_scale > 1 (URSAPipeline.__call__); a scale below 1 is
    refused unless `cfg_below_one` names it, and then it guides (one batched forward of 2B rows)."""
    u_ids, u_mask = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(
        ValueError, match="cfg_scale 0.5 < 1 guides towards the unconditional .* cfg_below_one"
    ):
        SamplerConfig(cfg_scale=0.5)
    cases = [(1.0, False, False), (1.5, False, True), (0.5, True, True), (1.0, True, False)]
    for scale, below, guided in cases:
        cfg = SamplerConfig(steps=2, cfg_scale=scale, cfg_below_one=below, cfg_trunc=1.0)
        oracle = Oracle(x1_target())
        EulerSampler(oracle, make_path("mixture"), cfg).sample(
            *text(),
            SHAPE,
            uncond_ids=u_ids,
            uncond_mask=u_mask,
            generator=torch.Generator().manual_seed(0),
        )
        assert cfg.guided == guided
        assert [x.shape[0] for x in oracle.calls] == [(2 if guided else 1) * B] * 2


def test_cond_noise_scale_noises_the_given_frames_once_then_holds_them():
    """cond_noise_scale s: the given frames are path.sample(cond, 1 - s) (the authors' add_noise),
    drawn once and then held at every model call; s = 0 gives them clean."""
    path, x1 = make_path("mixture"), x1_target()
    cond = x1_target(seed=9)
    frames = torch.tensor([[True, False, False], [True, False, False]])
    oracle = Oracle(x1)
    out = EulerSampler(oracle, path, SamplerConfig(steps=6, cond_noise_scale=0.9)).sample(
        *text(),
        SHAPE,
        condition_ids=cond,
        condition_frames=frames,
        generator=torch.Generator().manual_seed(0),
    )
    noised = oracle.calls[0][frames]
    # t = 0.1 on the mixture path: each token stays x1 with probability 0.1 (+ 1/K by chance)
    kept = (noised == cond[frames]).float().mean().item()
    assert 0.0 < kept < 0.4, kept  # 72 tokens: mean 0.11, sd 0.04; 0.4 is 7 sd away
    for x in oracle.calls + [out]:
        assert torch.equal(x[frames], noised)
    with pytest.raises(ValueError, match="cond_noise_scale"):
        SamplerConfig(cond_noise_scale=1.0)


@pytest.mark.parametrize("precision", ["bfloat16", "release"])
def test_precision_runs_the_model_and_release_the_path_step_in_half(precision, monkeypatch):
    """precision "release": the transformer in float16, guidance and softmax in float16 and the
    metric path's distances and jump weights in float16 (the authors' pipeline); "bfloat16": the
    model in bf16, the rest float32. Tiny sizes on CPU; "float32" stays bit-identical to the
    default."""
    import ursa.sample as S
    from ursa.sample import for_precision

    ids, mask = text()
    u_ids, u_mask = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool)
    cfg = SamplerConfig(steps=3, cfg_scale=3.0, precision=precision)
    model, path = for_precision(tiny_model(), make_path("metric"), precision)
    seen = []
    draw = S.categorical
    monkeypatch.setattr(
        S, "categorical", lambda z, g, **kw: seen.append((z.dtype, kw["dtype"])) or draw(z, g, **kw)
    )
    steps = []
    step = type(path).step

    def spy(self, *a, **kw):
        steps.append(self.embeddings.dtype)
        return step(self, *a, **kw)

    monkeypatch.setattr(type(path), "step", spy)
    out = EulerSampler(model, path, cfg).sample(
        ids,
        mask,
        (2, 4, 4),
        uncond_ids=u_ids,
        uncond_mask=u_mask,
        generator=torch.Generator().manual_seed(0),
    )
    half = precision == "release"
    assert next(model.parameters()).dtype == S.PRECISIONS[precision]
    assert seen == [(torch.float16, torch.float16) if half else (torch.float32, torch.float32)] * 3
    assert steps == [torch.float16 if half else torch.float32] * 2
    assert out.shape == (B, 2, 4, 4) and 0 <= int(out.min()) and int(out.max()) < K
    m32, p32 = for_precision(tiny_model(), make_path("metric"), "float32")
    plain = EulerSampler(tiny_model(), make_path("metric"), SamplerConfig(steps=3, cfg_scale=3.0))

    def run(sampler: EulerSampler) -> torch.Tensor:
        return sampler.sample(
            ids,
            mask,
            (2, 4, 4),
            uncond_ids=u_ids,
            uncond_mask=u_mask,
            generator=torch.Generator().manual_seed(0),
        )

    cast = EulerSampler(m32, p32, SamplerConfig(steps=3, cfg_scale=3.0))
    assert torch.equal(run(cast), run(plain))
