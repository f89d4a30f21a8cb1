"""The steady training step: the data order built once per epoch, no update with a non-finite loss
(also when losses are read back only every log_every steps, and with a fused optimizer that skips
updates on the device), preemption stops at a step boundary with a checkpoint, log_every's default."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from tiny_training import K, dataset, model

from ursa import train as train_module
from ursa.path_config import build_path
from ursa.preempt import Preempted
from ursa.train import (
    NonFiniteLossError,
    _batch_index,
    _permutation,
    resolved_log_every,
    train,
)
from ursa.train_config import TrainConfig

CFG = dict(steps=8, batch_size=2, warmup_steps=2, checkpoint_every=8, p_first=0.5)


def fit(out, m=None, **kw):
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


def test_the_permutation_is_built_once_per_epoch(tmp_path, monkeypatch):
    calls = []
    randperm = torch.randperm

    def counted(*args, **kwargs):
        calls.append(args[0])
        return randperm(*args, **kwargs)

    _permutation.cache_clear()
    monkeypatch.setattr(torch, "randperm", counted)
    fit(tmp_path)  # 8 steps x 2 clips of 5: positions 0..15, epochs 0..3
    assert calls == [5] * 4, calls
    # the stream is the per-epoch permutations, end to end (batches cross epoch boundaries)
    stream = torch.cat([_batch_index(p, 2, 5, 0) for p in range(0, 16, 2)])
    want = torch.cat([randperm(5, generator=torch.Generator().manual_seed(e)) for e in range(4)])[
        :16
    ]
    assert torch.equal(stream, want)


def _nan_at(m, call: int) -> None:
    """Make the model's loss NaN at its `call`-th forward (once)."""
    seen = [0]

    def hook(module, args, output):
        seen[0] += 1
        return output * float("nan") if seen[0] == call else output

    m.register_forward_hook(hook)


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_nan_stops_training_before_its_update_when_losses_are_read_every_5_steps(tmp_path):
    """log_every 5: the loss of step 3 is read at step 5, but its gradient norm is read before the
    update (on the CPU a read costs nothing): the weights are those after step 2."""
    before = model()
    fit(tmp_path / "a", before, log_every=5, stop_after=2)
    m = model()
    _nan_at(m, 3)
    with pytest.raises(
        NonFiniteLossError,
        match=r"training loss is nan at step 3; stopped before the update of step 3",
    ):
        fit(tmp_path / "b", m, log_every=5)
    assert _same_weights(m, before)
    assert not (tmp_path / "b" / "checkpoint").exists()


def test_a_fused_optimizer_skips_the_update_on_the_device_until_the_flush(tmp_path, monkeypatch):
    """A fused AdamW (as on CUDA; CPU's fused kernel takes the same found_inf flag): no host read per
    step; the NaN of step 3 makes it skip updates 3 and 4, and the flush at step 5 raises."""
    optimizer = train_module._optimizer

    def fused(model_, config):
        groups = [
            {"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in optimizer(model_, config).param_groups
        ]
        return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), fused=True)

    monkeypatch.setattr(train_module, "_optimizer", fused)
    before = model()
    fit(tmp_path / "a", before, log_every=5, stop_after=2)
    m = model()
    _nan_at(m, 3)
    with pytest.raises(
        NonFiniteLossError, match=r"at step 3; no update used it .* read back at step 5"
    ):
        fit(tmp_path / "b", m, log_every=5)
    assert _same_weights(m, before)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_preemption_checkpoints_at_the_next_step_boundary_and_resumes_exactly(tmp_path):
    """SIGUSR2 (SLURM's signal before a time limit) during step 4: step 4 finishes, its checkpoint
    is written (none was due: checkpoint_every 8), Preempted is raised; the rerun resumes there and
    ends as an uninterrupted run does, bit for bit."""
    straight = fit(tmp_path / "a")

    def poke(step: int, loss: float) -> None:
        if step == 3:  # after step 3's boundary: the signal lands while step 4 runs
            os.kill(os.getpid(), signal.SIGUSR2)

    with pytest.raises(Preempted, match="after step 4 on SIGUSR2"):
        fit(tmp_path / "b", on_step=poke)
    state = torch.load(tmp_path / "b" / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 4 and len(state["losses"]) == 4
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # the previous handler is back
    resumed = fit(tmp_path / "b")
    assert resumed.losses == straight.losses


def test_a_previous_python_handler_gets_the_signal_after_the_checkpoint_and_training_goes_on(
    tmp_path,
):
    """As submitit's: the handler installed before train() (submitit's requeue, or its bypass of
    SIGTERM) is called once the checkpoint of the step is on disk; if it returns, training goes on."""
    seen = []

    def handler(signum, frame):
        state = torch.load(tmp_path / "b" / "checkpoint" / "state.pt", weights_only=False)
        seen.append((signal.Signals(signum).name, state["step"]))

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        done = fit(
            tmp_path / "b",
            on_step=lambda step, loss: step == 5 and os.kill(os.getpid(), signal.SIGTERM),
        )
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [("SIGTERM", 6)] and done.steps == 8
    assert done.losses == fit(tmp_path / "a").losses


def test_log_every_defaults_to_every_step_on_the_cpu_and_10_on_an_accelerator():
    config = TrainConfig()
    assert config.log_every is None
    assert resolved_log_every(config, torch.device("cpu")) == 1
    assert resolved_log_every(config, torch.device("cuda", 0)) == 10
    assert resolved_log_every(TrainConfig(log_every=3), torch.device("cuda", 0)) == 3


def _padded(n: int = 6):
    """The tiny data set with captions right-padded to the longest: real lengths 1..4 and, by
    caption dropout (p_uncond), 0."""
    data = dataset(n)
    lengths = torch.tensor([4, 1, 3, 1, 2, 4])[:n]
    data.text_mask = torch.arange(4) < lengths[:, None]
    return data


def test_split_padded_captions_equal_the_masked_path(tmp_path):
    """padded_captions split (one model call per caption length, padding cut off, no mask) trains
    as the masked call does, to float summation order (tolerance 1e-5 relative; measured ~1e-7)."""
    path = build_path("mixture", vocab_size=K)
    cfg = dict(CFG, batch_size=6, p_uncond=0.3)
    masked = train(model(), path, _padded(), TrainConfig(**cfg), tmp_path / "a", progress=False)
    m = model()
    split = train(
        m,
        path,
        _padded(),
        TrainConfig(**cfg, padded_captions="split"),
        tmp_path / "b",
        progress=False,
    )
    torch.testing.assert_close(
        torch.tensor(split.losses), torch.tensor(masked.losses), rtol=1e-5, atol=0
    )
    assert (
        split.losses
        != train(
            model(), path, dataset(6), TrainConfig(**cfg), tmp_path / "c", progress=False
        ).losses
    )  # the padding matters: the test can tell
    from ursa.train import caption_groups

    groups = caption_groups(_padded().text_mask)
    assert [(idx.tolist(), n) for idx, n in groups] == [
        ([1, 3], 1),
        ([4], 2),
        ([2], 3),
        ([0, 5], 4),
    ]
    assert (
        caption_groups(torch.tensor([[False, True], [True, True]])) is None
    )  # left padding: masked path


def test_even_groups_cut_the_largest_group_until_every_rank_has_as_many():
    from ursa.train import even_groups

    groups = [(torch.tensor([0, 2, 3]), 4), (torch.tensor([1]), 2)]
    got = even_groups(groups, 4)
    assert sorted((tuple(i.tolist()), n) for i, n in got) == [
        ((0,), 4),
        ((1,), 2),
        ((2,), 4),
        ((3,), 4),
    ]
    assert even_groups(groups, 2) == groups


def test_a_fused_head_kernel_is_optional_and_named_when_missing(tmp_path, monkeypatch):
    """head_kernel cce / liger: a clear error naming the package when it does not import; wired to
    the package's linear + cross-entropy with zero-weight tokens as ignored targets (here a stand-in
    module computing it plainly: the losses equal the chunked head's to float order, 1e-5)."""
    import sys
    import types

    import torch.nn.functional as F

    monkeypatch.setitem(
        sys.modules, "liger_kernel", None
    )  # not importable, whether installed or not
    with pytest.raises(
        ValueError, match=r"head_kernel: 'liger' needs the optional package `liger-kernel`"
    ):
        fit(tmp_path / "x", head_kernel="liger")
    fake = types.ModuleType("cut_cross_entropy")
    fake.linear_cross_entropy = lambda e, c, targets, ignore_index, reduction: F.cross_entropy(
        F.linear(e, c).float(), targets, ignore_index=ignore_index, reduction=reduction
    )
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", fake)
    chunked, fused = fit(tmp_path / "a").losses, fit(tmp_path / "b", head_kernel="cce").losses
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(chunked), rtol=1e-5, atol=0)
