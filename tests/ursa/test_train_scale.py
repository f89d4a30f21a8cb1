"""The large-model loop on one process: EMA (kept, resumed exactly, exported for sampling),
activation checkpointing, losses read back every log_every steps, TensorBoard events."""

from __future__ import annotations

import csv

import pytest
import torch
from tiny_training import K, dataset, model

from ursa.model import URSAModel
from ursa.path_config import build_path
from ursa.train import NonFiniteLossError, export_model, train
from ursa.train_config import TrainConfig

CFG = dict(steps=8, batch_size=2, warmup_steps=2, checkpoint_every=3, p_first=0.5)


def fit(out, m: URSAModel | None = None, **kw):
    opts = {k: kw.pop(k) for k in ("on_step", "stop_after") if k in kw}
    return train(
        m or model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        TrainConfig(**{**CFG, **kw}),
        out,
        progress=False,
        **opts,
    )


def rows(p) -> list[tuple[int, float]]:
    with open(p) as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_ema_follows_the_weights_resumes_exactly_and_is_what_sampling_loads(tmp_path):
    m, decay = model(), 0.8
    shadow = {n: p.detach().clone() for n, p in m.named_parameters()}

    def track(
        step: int, loss: float
    ) -> None:  # the EMA by hand, from the weights after each update
        for n, p in m.named_parameters():
            shadow[n].lerp_(p.detach(), 1 - decay)

    res = fit(tmp_path / "a", m, ema_decay=decay, on_step=track)
    assert set(res.ema) == set(shadow)
    for n in shadow:
        torch.testing.assert_close(res.ema[n], shadow[n], rtol=1e-6, atol=1e-7)
    assert not torch.equal(
        res.ema["head.weight"], m.head.weight
    )  # a moving average, not the weights
    export_model(m, res, tmp_path / "model")
    loaded = URSAModel.from_pretrained(tmp_path / "model")
    assert all(torch.equal(loaded.state_dict()[n], res.ema[n]) for n in res.ema)
    # killed after step 5 (last checkpoint: 3), resumed in a fresh model: the same EMA, bit for bit
    fit(tmp_path / "b", ema_decay=decay, stop_after=5)
    resumed = fit(tmp_path / "b", model(seed=7), ema_decay=decay)
    assert resumed.losses == res.losses
    assert all(torch.equal(resumed.ema[n], res.ema[n]) for n in res.ema)
    # snapshots hold the EMA weights too: the learning curve is sampled from what the final model is
    fit(tmp_path / "c", ema_decay=decay, snapshots=[1.0])
    snap = URSAModel.from_pretrained(tmp_path / "c" / "snapshots" / "step_8")
    assert all(torch.equal(snap.state_dict()[n], res.ema[n]) for n in res.ema)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_activation_checkpointing_trains_the_same(tmp_path):
    m = model()
    plain = fit(tmp_path / "a").losses
    recomputed = fit(tmp_path / "b", m, activation_checkpointing=True).losses
    assert m.backbone.gradient_checkpointing
    torch.testing.assert_close(torch.tensor(recomputed), torch.tensor(plain), rtol=1e-6, atol=0)


def test_compile_compiles_each_block_once_and_trains_the_same(tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    m = model()
    plain = fit(tmp_path / "a").losses
    compiled = fit(tmp_path / "b", m, compile=True).losses
    assert all(block._compiled_call_impl is not None for block in m.backbone.layers)
    assert (
        counters["stats"]["unique_graphs"] == 1
    )  # one graph shared by every block, not one per block
    # inductor's fused kernels sum in another order: float32 rounding, compounded over 8 steps
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(plain), rtol=1e-4, atol=0)
    # parameter names are unchanged: the checkpoint loads into a plain model
    URSAModel.from_pretrained(tmp_path / "b" / "checkpoint")


def test_losses_read_back_every_n_steps_keep_one_row_per_step(tmp_path):
    every = fit(tmp_path / "a")
    batched = fit(
        tmp_path / "b", log_every=5
    )  # flushes at 3 and 6 (checkpoints), 5, and 8 (the end)
    assert batched.losses == every.losses
    assert rows(tmp_path / "b" / "losses.csv") == rows(tmp_path / "a" / "losses.csv")
    assert [s for s, _ in rows(tmp_path / "b" / "losses.csv")] == list(range(1, 9))
    m = model()
    with torch.no_grad():
        m.head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="at step 1;"):
        fit(tmp_path / "c", m, log_every=2, checkpoint_every=8)
    assert not (tmp_path / "c" / "checkpoint").exists()


def test_tensorboard_events_hold_every_step_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = fit(tmp_path, tensorboard=True, log_every=4)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 9))
    torch.testing.assert_close(torch.tensor([e.value for e in loss]), torch.tensor(res.losses))
    assert {"perf/tokens_per_s", "train/lr"} <= set(events.Tags()["scalars"])
