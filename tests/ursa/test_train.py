"""Training loop: loss falls, kill-and-resume is bit-identical, NaN stops the run, bad input."""

from __future__ import annotations

import csv

import pytest
import torch

from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.train import NonFiniteLossError, TokenDataset, train, training_loss
from ursa.train_config import TrainConfig

K = 32


def dataset(n: int = 6, seed: int = 0) -> TokenDataset:
    """n clips of (2, 4, 4) ids with a per-clip structure (a constant frame pattern) to learn."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, 16, (n, 4), generator=g)
    frame = torch.randint(0, K, (n, 1, 4, 4), generator=g)
    return TokenDataset(
        text, torch.ones(n, 4, dtype=torch.bool), frame.expand(n, 2, 4, 4).contiguous()
    )


def model(seed: int = 0) -> URSAModel:
    return URSAModel(URSAConfig.preset("tiny", text_vocab_size=16, visual_vocab_size=K), seed=seed)


def path():
    return build_path("mixture", vocab_size=K)


def read_csv(p):
    with open(p) as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_loss_falls_on_tiny_set(tmp_path):
    cfg = TrainConfig(steps=60, batch_size=6, lr=3e-3, warmup_steps=5, checkpoint_every=60)
    res = train(model(), path(), dataset(), cfg, tmp_path, progress=False)
    assert res.steps == 60 and len(res.losses) == 60
    first, last = sum(res.losses[:5]) / 5, sum(res.losses[-5:]) / 5
    # ln K = 3.47 at init; memorising 6 clips must cut the mean loss by > 1 nat within 60 steps.
    assert last < first - 1.0, (first, last)
    assert (tmp_path / "checkpoint" / "model.safetensors").is_file()
    assert [s for s, _ in read_csv(tmp_path / "losses.csv")] == list(range(1, 61))


def test_kill_and_resume_is_bit_identical(tmp_path):
    data, kw = dataset(n=5), dict(progress=False)
    # Odd dataset size vs batch 2 crosses epoch boundaries; p_first exercises clean condition frames.
    cfg = TrainConfig(
        steps=8, batch_size=2, warmup_steps=2, checkpoint_every=3, p_first=0.5, shift=2.0
    )
    straight = model()
    full = train(straight, path(), data, cfg, tmp_path / "a", **kw)
    killed = train(
        model(), path(), data, cfg, tmp_path / "b", stop_after=5, **kw
    )  # last checkpoint: step 3
    assert killed.steps == 5
    fresh = model(
        seed=123
    )  # a new object with other weights: everything must come from the checkpoint
    resumed = train(fresh, path(), data, cfg, tmp_path / "b", **kw)
    assert resumed.steps == 8
    assert resumed.losses == full.losses  # exact float equality
    for (name, a), (_, b) in zip(straight.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    # Rows logged after the checkpoint by the killed run are not duplicated.
    assert read_csv(tmp_path / "b" / "losses.csv") == read_csv(tmp_path / "a" / "losses.csv")
    assert [s for s, _ in read_csv(tmp_path / "b" / "losses.csv")] == list(range(1, 9))


def test_nan_loss_raises_before_update(tmp_path):
    m = model()
    with torch.no_grad():
        m.head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 1"):
        train(m, path(), dataset(), TrainConfig(steps=3, batch_size=2), tmp_path, progress=False)
    assert not (tmp_path / "checkpoint").exists()


def test_clean_frames_are_left_out_of_the_loss():
    m, data = model(), dataset(n=2)
    t = torch.tensor([[1.0, 0.3], [1.0, 0.6]])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    loss = training_loss(m, path(), data, t, generator=g())
    # Recompute by hand: frame 0 given clean, CE averaged over frame 1 tokens only (tolerance 1e-6).
    x_t = path().sample(data.visual_ids, t[:, :, None, None], generator=g())
    x_t[:, 0] = data.visual_ids[:, 0]
    logits = m(data.text_ids, x_t, data.text_mask)
    want = torch.nn.functional.cross_entropy(
        logits[:, 1].reshape(-1, K), data.visual_ids[:, 1].reshape(-1)
    )
    torch.testing.assert_close(loss, want, atol=1e-6, rtol=1e-6)


def test_bad_input_raises_value_error_naming_argument(tmp_path):
    data = dataset()
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=-1, batch_size=2)
    with pytest.raises(ValueError, match="frame_schedule"):
        TrainConfig(steps=1, batch_size=2, frame_schedule="random")
    with pytest.raises(ValueError, match="visual_ids"):
        TokenDataset(data.text_ids, data.text_mask, data.visual_ids.float())
    with pytest.raises(ValueError, match="text_mask"):
        TokenDataset(data.text_ids, data.text_mask[:, :2], data.visual_ids)
    with pytest.raises(ValueError, match="t: expected"):
        training_loss(model(), path(), data, torch.rand(6, 3))
    with pytest.raises(ValueError, match="visual_ids"):
        bad = TokenDataset(data.text_ids, data.text_mask, data.visual_ids + K)
        train(model(), path(), bad, TrainConfig(steps=1, batch_size=2), tmp_path, progress=False)
    # a caption id past the model's text vocabulary (text_vocab_size 16): named as the data's, before
    # the forward (on a GPU the embedding would only give a device-side assert); 3 steps of 2 see all 6 clips
    text = data.text_ids.clone()
    text[3, 1] = 16
    with pytest.raises(
        ValueError, match=r"data\.text_ids: expected caption ids in \[0, 16\).*\[0, 16\]"
    ):
        train(
            model(),
            path(),
            TokenDataset(text, data.text_mask, data.visual_ids),
            TrainConfig(steps=3, batch_size=2),
            tmp_path / "text",
            progress=False,
        )


def _trained_parameters(data: TokenDataset, p_uncond: float, out) -> dict[str, torch.Tensor]:
    m = model()
    train(
        m,
        path(),
        data,
        TrainConfig(steps=6, batch_size=3, p_uncond=p_uncond, checkpoint_every=6),
        out,
        progress=False,
    )
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_caption_dropout_trains_the_unconditional_branch(tmp_path):
    """p_uncond = 1 drops every caption: training cannot depend on the text, so two data sets that
    differ only in captions give bit-identical weights; with p_uncond = 0 they differ."""
    data = dataset()
    other = TokenDataset((data.text_ids + 1) % 16, data.text_mask, data.visual_ids)
    a = _trained_parameters(data, 1.0, tmp_path / "a")
    b = _trained_parameters(other, 1.0, tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _trained_parameters(data, 0.0, tmp_path / "c")
    d = _trained_parameters(other, 0.0, tmp_path / "d")
    assert not all(torch.equal(c[k], d[k]) for k in c)
    with pytest.raises(ValueError, match="p_uncond"):
        TrainConfig(steps=1, batch_size=2, p_uncond=1.5)


def test_shift_rule_resolves_from_the_training_clips_token_count(tmp_path):
    from ursa.schedule import shift_for_tokens

    fixed = train(
        model(),
        path(),
        dataset(),
        TrainConfig(steps=1, batch_size=2, shift=2.5),
        tmp_path / "a",
        progress=False,
    )
    assert fixed.shift == 2.5
    rule = TrainConfig(steps=1, batch_size=2, shift=2.5, shift_rule="resolution")
    assert train(
        model(), path(), dataset(), rule, tmp_path / "b", progress=False
    ).shift == shift_for_tokens(2 * 4 * 4)


def test_zero_steps_leaves_the_model_untouched(tmp_path):
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = train(m, path(), dataset(), TrainConfig(steps=0, batch_size=2), tmp_path, progress=False)
    assert res.steps == 0 and res.losses == []
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_snapshots_keep_the_weights_of_the_curve_points(tmp_path):
    cfg = TrainConfig(steps=8, batch_size=2, checkpoint_every=3, snapshots=[0.25, 0.5, 1.0])
    assert cfg.snapshot_steps() == [2, 4, 8]
    m = model()
    train(m, path(), dataset(), cfg, tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "step_2",
        "step_4",
        "step_8",
    ]
    final = URSAModel.from_pretrained(tmp_path / "snapshots" / "step_8")
    assert all(
        torch.equal(a, b) for a, b in zip(final.state_dict().values(), m.state_dict().values())
    )
    early = URSAModel.from_pretrained(tmp_path / "snapshots" / "step_2")
    assert not all(
        torch.equal(a, b) for a, b in zip(early.state_dict().values(), m.state_dict().values())
    )
    with pytest.raises(ValueError, match="snapshots"):
        TrainConfig(snapshots=[0.0])


def test_denoising_loss_is_ordered_by_noise_level_after_training(tmp_path):
    """A trained model finds nearly clean inputs easier than pure noise; an untrained one is at
    ln K everywhere (uniform logits would be exactly ln K; a random init is within 0.5 nat)."""
    import math

    from ursa.train import denoising_loss

    data, p = dataset(), path()
    fresh = denoising_loss(model(), p, data, [0.0, 0.9], generator=torch.Generator().manual_seed(0))
    assert all(abs(v - math.log(K)) < 0.5 for v in fresh), fresh
    m = model()
    train(
        m,
        p,
        data,
        TrainConfig(steps=60, batch_size=6, lr=3e-3, warmup_steps=5, checkpoint_every=60),
        tmp_path,
        progress=False,
    )
    noisy, clean = denoising_loss(
        m, p, data, [0.05, 0.95], generator=torch.Generator().manual_seed(0)
    )
    assert clean < noisy - 0.5, (noisy, clean)
