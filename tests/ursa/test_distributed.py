"""Training on several processes (gloo on CPU): DDP and FSDP2 match one process with the whole
batch, gradient accumulation too; a killed rank fails the job at once (no hang) and the rerun, in
one process, resumes from the checkpoint the two processes wrote; sharded checkpoints
(torch.distributed.checkpoint) of two FSDP2 processes resume in one, and one process's in two.

Two launches of 2 processes (the expensive part: each process imports torch and transformers);
every single-process run (references, and the sides of the resumes run by one process) runs in
the test process."""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.multiprocessing import ProcessExitedException

from ursa import distributed
from ursa.ema import EMA
from ursa.model import URSAConfig, URSAModel
from ursa.parallel import full_ema, wrap
from ursa.path_config import build_path
from ursa.preempt import Preempted
from ursa.train import TokenDataset, TrainResult, load_result, train
from ursa.train_config import TrainConfig

K, STEPS, B = 32, 20, 4
RTOL = 1e-5  # float summation order differs (per-rank sums, all-reduce); nothing else may (measured: 2e-7)
CFG = dict(
    steps=STEPS,
    batch_size=B,
    lr=3e-3,
    warmup_steps=2,
    checkpoint_every=5,
    p_first=0.5,
    p_uncond=0.25,
    shift=2.0,
)


def dataset(n: int = 7) -> TokenDataset:
    """n clips of (2, 4, 4) ids (odd n: batches cross epoch boundaries)."""
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, K, (n, 1, 4, 4), generator=g)
    return TokenDataset(
        torch.randint(0, 16, (n, 4), generator=g),
        torch.ones(n, 4, dtype=torch.bool),
        frame.expand(n, 2, 4, 4).contiguous(),
    )


def padded() -> TokenDataset:
    """dataset() with captions right-padded to the longest (real lengths 1..4): the ranks' clips
    of a step have different caption lengths, so they split into different numbers of groups."""
    data = dataset()
    data.text_mask = torch.arange(4) < torch.tensor([4, 1, 3, 1, 2, 4, 2])[:, None]
    return data


def model() -> URSAModel:
    return URSAModel(URSAConfig.preset("tiny", text_vocab_size=16, visual_vocab_size=K), seed=0)


def fit(out: Path, stop_after: int | None = None, on_step=None, **overrides) -> TrainResult:
    return train(
        model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        TrainConfig(**{**CFG, **overrides}),
        out,
        progress=False,
        stop_after=stop_after,
        on_step=on_step,
    )


def run(out: Path, **overrides) -> list[float]:
    return fit(out, **overrides).losses


def read_losses(p: Path) -> list[float]:
    with open(p) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def close(a: list[float], b: list[float], rtol: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= rtol * abs(y) for x, y in zip(a, b))


CLIP = dict(corruption="clip", ema_decay=0.9)  # per-clip noise seeds, an EMA
SHARDED = dict(CLIP, checkpoint_format="sharded")


def _runs(root: str) -> None:
    """Each rank: DDP, DDP with 2 micro-batches per process, both with the batch-wide noise draw,
    then DDP and FSDP2 (with activation checkpointing) with per-clip noise seeds (each rank reads
    and corrupts only its clips), both keeping an EMA; then, with sharded checkpoints, FSDP2
    and DDP killed after step 12 (checkpoint: step 10) and FSDP2 resuming one process's step-10 checkpoint."""
    root = Path(root)
    run(root / "ddp")
    run(root / "ddp_accum", grad_accum=2)
    run(root / "ddp_clip", **CLIP)
    run(root / "fsdp_clip", parallel="fsdp", activation_checkpointing=True, **CLIP)
    run(root / "fsdp_bf16", parallel="fsdp", fsdp_bf16=True, **CLIP)
    run(root / "fsdp_sharded", stop_after=12, parallel="fsdp", **SHARDED)
    run(root / "ddp_sharded", stop_after=12, **SHARDED)
    run(root / "one_to_two", parallel="fsdp", **SHARDED)
    _preempted(root)
    _ema_gathered(root)
    for parallel in ("ddp", "fsdp"):
        train(
            model(),
            build_path("mixture", vocab_size=K),
            padded(),
            TrainConfig(**CFG, parallel=parallel, padded_captions="split"),
            root / f"split_{parallel}",
            progress=False,
        )
    _clips_read(root)


class _Counted:
    """A ClipSource that counts the clips a process selects."""

    def __init__(self) -> None:
        self.data, self.read = dataset(), 0

    latent_shape = property(lambda self: self.data.latent_shape)

    def __len__(self) -> int:
        return len(self.data)

    def id_range(self) -> tuple[int, int]:
        return self.data.id_range()

    def select(self, index: torch.Tensor) -> TokenDataset:
        self.read += len(index)
        return self.data.select(index)


def _clips_read(root: Path) -> None:
    """How many clips each rank reads in 3 steps of batch-wide corruption."""
    counted, rank = _Counted(), distributed.current()
    train(
        model(),
        build_path("mixture", vocab_size=K),
        counted,
        TrainConfig(**{**CFG, "steps": 3}),
        root / "counted",
        progress=False,
    )
    (root / f"clips_read_rank{rank.rank}.txt").write_text(str(counted.read))


def _preempted(root: Path) -> None:
    """FSDP2 with sharded checkpoints; only rank 1 gets SIGUSR2, after step 7's boundary (as SLURM
    may signal the tasks of a job at slightly different times): both ranks stop after step 8 and
    write its checkpoint (none was due: checkpoint_every 5)."""
    rank = distributed.current()

    def poke(step: int, loss: float) -> None:
        if rank.rank == 1 and step == 7:
            os.kill(os.getpid(), signal.SIGUSR2)

    try:
        fit(root / "preempted", parallel="fsdp", **SHARDED, on_step=poke)
    except Preempted as exc:
        (root / "preempted" / f"rank{rank.rank}.txt").write_text(str(exc))


def _ema_gathered(root: Path) -> None:
    """What full_ema leaves on each rank of an FSDP2 model: names and shapes."""
    rank = distributed.current()
    m = model()
    wrap(m, TrainConfig(**{**CFG, "parallel": "fsdp"}), rank, torch.device("cpu"))
    full = full_ema(EMA(m, 0.9), rank.main)
    torch.save({n: tuple(v.shape) for n, v in full.items()}, root / f"ema_rank{rank.rank}.pt")


def _killed_at_12(root: str) -> None:
    """Rank 1 is SIGKILLed after step 12 (checkpoints at 5 and 10); rank 0 blocks in the next all-reduce."""
    rank = distributed.init_from_env()

    def die(step: int, loss: float) -> None:
        if rank.rank == 1 and step == 12:
            os.kill(os.getpid(), signal.SIGKILL)

    train(
        model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        TrainConfig(**CFG),
        Path(root) / "killed",
        progress=False,
        on_step=die,
    )


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    run(
        root / "one_to_two", stop_after=12, **SHARDED
    )  # one process: the sharded checkpoint of step 10
    distributed.launch(_runs, 2, str(root), start_method="fork")  # fork: no re-import
    return root


@pytest.fixture(scope="module")
def one_proc(tmp_path_factory) -> list[float]:
    return run(tmp_path_factory.mktemp("one") / "run")


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> TrainResult:
    return fit(tmp_path_factory.mktemp("one_clip") / "run", **CLIP)


def test_ddp_two_processes_equal_one_process_with_the_whole_batch(
    two_procs: Path, one_proc: list[float]
) -> None:
    ddp = read_losses(two_procs / "ddp" / "losses.csv")
    assert len(ddp) == STEPS and close(ddp, one_proc, RTOL), (ddp, one_proc)
    assert (
        one_proc[-1] < one_proc[0] - 0.5
    )  # it trains: not a constant trajectory compared with itself


def test_gradient_accumulation_equals_the_whole_batch(
    two_procs: Path, one_proc: list[float], tmp_path: Path
) -> None:
    assert close(
        read_losses(two_procs / "ddp_accum" / "losses.csv"), one_proc, RTOL
    )  # 2 processes x 2 x B/4
    assert close(run(tmp_path / "accum", grad_accum=2), one_proc, RTOL)  # 1 process x 2 x B/2
    with pytest.raises(
        ValueError, match="batch_size: expected a multiple of processes x grad_accum"
    ):
        run(tmp_path / "bad", grad_accum=3)


def test_per_clip_noise_ddp_and_fsdp2_equal_one_process(
    two_procs: Path, one_proc: list[float], one_clip: TrainResult
) -> None:
    one, one_clip = one_clip, one_clip.losses
    ddp, fsdp = (read_losses(two_procs / name / "losses.csv") for name in ("ddp_clip", "fsdp_clip"))
    assert close(ddp, one_clip, RTOL) and close(fsdp, one_clip, RTOL) and close(fsdp, ddp, RTOL)
    assert not close(
        one_clip, one_proc, RTOL
    )  # another noise stream: the comparison can tell streams apart
    for name in (
        "ddp_clip",
        "fsdp_clip",
    ):  # the EMA (gathered from FSDP2 shards) is the one process's
        ema = load_result(two_procs / name).ema
        assert all(torch.allclose(ema[k], one.ema[k], rtol=0, atol=1e-5) for k in one.ema)
    # the FSDP2 checkpoint holds full weights: the single-process format, loadable as a model
    URSAModel.from_pretrained(two_procs / "fsdp_clip" / "checkpoint")


def test_killed_rank_fails_the_job_and_one_process_resumes_its_checkpoint(
    tmp_path: Path, two_procs: Path, one_proc: list[float]
) -> None:
    start = time.monotonic()
    with pytest.raises(ProcessExitedException, match="signal SIGKILL"):
        distributed.launch(_killed_at_12, 2, str(tmp_path), start_method="fork")
    assert time.monotonic() - start < 60  # the launcher ends rank 0 at once: no wait for a timeout
    out = tmp_path / "killed"
    assert torch.load(out / "checkpoint" / "state.pt", weights_only=False)["step"] == 10
    resumed = run(out)  # the rerun: one process, from the 2-process checkpoint of step 10
    assert len(resumed) == STEPS and read_losses(out / "losses.csv") == resumed
    assert close(resumed, read_losses(two_procs / "ddp" / "losses.csv"), RTOL)
    assert close(resumed, one_proc, RTOL)


def near(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-5) for k in b)


def test_fsdp2_sharded_checkpoint_holds_each_ranks_shards_and_resumes_in_one_process(
    two_procs: Path, one_clip: TrainResult
) -> None:
    out = two_procs / "fsdp_sharded"
    ck = out / "checkpoint"
    assert torch.load(ck / "state.pt", weights_only=False)["step"] == 10
    assert sorted(p.name for p in ck.iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "__1_0.distcp",
        "state.pt",
    ]
    meta = FileSystemReader(ck).read_metadata()
    # each rank wrote its own half of a weight (FSDP2 shards dim 0) and of its AdamW moments, nothing gathered
    for key in ("model.head.weight", "optimizer.state.head.weight.exp_avg", "ema.head.weight"):
        chunks = meta.state_dict_metadata[key].chunks
        assert [c.offsets[0] for c in chunks] == [0, meta.state_dict_metadata[key].size[0] // 2], (
            key
        )
    files = {
        info.relative_path
        for index, info in meta.storage_data.items()
        if index.fqn == "model.head.weight"
    }
    assert files == {"__0_0.distcp", "__1_0.distcp"}
    resumed = fit(
        out, **SHARDED
    )  # the rerun: one process, resharding the 2-process checkpoint of step 10
    assert resumed.steps == STEPS and read_losses(out / "losses.csv") == resumed.losses
    assert close(resumed.losses, one_clip.losses, RTOL), (resumed.losses, one_clip.losses)
    assert near(resumed.ema, one_clip.ema)


def test_ddp_sharded_checkpoint_resumes_in_one_process(
    two_procs: Path, one_clip: TrainResult
) -> None:
    out = two_procs / "ddp_sharded"
    ck = out / "checkpoint"
    # DDP ranks hold whole replicas: torch.distributed.checkpoint writes each tensor once
    assert (ck / ".metadata").is_file() and not (ck / "model.safetensors").exists()
    steps: list[int] = []
    resumed = train(
        model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        TrainConfig(**{**CFG, **SHARDED}),
        out,
        progress=False,
        on_step=lambda n, _: steps.append(n),
    )
    assert steps == list(range(11, STEPS + 1))  # resumed at the step-10 checkpoint, not restarted
    assert close(resumed.losses, one_clip.losses, RTOL), (resumed.losses, one_clip.losses)
    assert near(resumed.ema, one_clip.ema)


def test_one_process_sharded_checkpoint_resumes_on_two_fsdp2_processes(
    two_procs: Path, one_clip: TrainResult
) -> None:
    out = two_procs / "one_to_two"
    losses = read_losses(out / "losses.csv")
    assert len(losses) == STEPS and close(losses, one_clip.losses, RTOL), (losses, one_clip.losses)
    done = load_result(out)  # losses from state.pt, the EMA from the two processes' shards
    assert done.steps == STEPS and done.losses == losses and near(done.ema, one_clip.ema)
    assert {"__0_0.distcp", "__1_0.distcp"} <= {p.name for p in (out / "checkpoint").iterdir()}
    # the last checkpoint also holds the full weights: what the harness reads after a distributed run
    final = URSAModel.from_pretrained(out / "checkpoint").state_dict()
    assert near(
        final, URSAModel.from_pretrained(two_procs / "fsdp_clip" / "checkpoint").state_dict()
    )  # 2 throughout


def test_preemption_stops_every_rank_at_the_next_step_and_they_all_write_its_checkpoint(
    two_procs: Path, one_clip: TrainResult
) -> None:
    """A preemption signal to one rank of two (FSDP2, sharded checkpoints): both stop after the next
    step and write its checkpoint, each its own shards; the rerun (one process) loses no step and
    ends as the uninterrupted run (before: SIGUSR2 killed rank 1 and the job died)."""
    out = two_procs / "preempted"
    for r in (0, 1):  # rank 0 stopped on rank 1's signal
        assert "training stopped after step 8 on SIGUSR2" in (out / f"rank{r}.txt").read_text()
    ck = out / "checkpoint"
    state = torch.load(ck / "state.pt", weights_only=False)
    assert (state["step"], state["world_size"], len(state["losses"])) == (8, 2, 8)
    assert {"__0_0.distcp", "__1_0.distcp"} <= {p.name for p in ck.iterdir()}
    steps: list[int] = []
    resumed = fit(out, on_step=lambda n, _: steps.append(n), **SHARDED)
    assert steps == list(range(9, STEPS + 1))
    assert close(resumed.losses, one_clip.losses, RTOL), (resumed.losses, one_clip.losses)


def test_full_ema_gathers_to_rank_zero_only(two_procs: Path) -> None:
    """FSDP2's EMA shards are gathered for rank 0's host alone (before: every rank held a full copy)."""
    zero, one = (torch.load(two_procs / f"ema_rank{r}.pt") for r in (0, 1))
    assert one == {}
    assert zero == {n: tuple(p.shape) for n, p in model().named_parameters()}


def test_batch_wide_corruption_reads_only_each_ranks_clips(two_procs: Path) -> None:
    """corruption: batch on 2 processes: each reads (and corrupts) its B/2 clips per step, not the
    whole global batch (its losses equal one process's: test_ddp_two_processes_...)."""
    for r in (0, 1):
        assert (two_procs / f"clips_read_rank{r}.txt").read_text() == str(3 * B // 2)


def test_fsdp2_bf16_parameters_train_close_to_fp32_with_fp32_master_weights(
    two_procs: Path,
) -> None:
    """train.fsdp_bf16 (MixedPrecisionPolicy: bf16 parameters in compute, fp32 reduction and master
    weights): the losses of fp32 FSDP2 to bf16 rounding (measured: 5.3e-4 relative at most over 20 steps;
    tolerance 5e-3), not bit-equal (the compute really is bf16), and the checkpoint holds fp32."""
    fp32, bf16 = (
        read_losses(two_procs / name / "losses.csv") for name in ("fsdp_clip", "fsdp_bf16")
    )
    assert close(bf16, fp32, 5e-3) and bf16 != fp32, (bf16, fp32)
    weights = URSAModel.from_pretrained(two_procs / "fsdp_bf16" / "checkpoint").state_dict()
    assert all(w.dtype == torch.float32 for w in weights.values())
    with pytest.raises(ValueError, match="fsdp_bf16: expected parallel 'fsdp'"):
        TrainConfig(fsdp_bf16=True)


def test_split_padded_captions_on_ddp_and_fsdp2_equal_the_masked_single_process(
    two_procs: Path, tmp_path: Path
) -> None:
    """padded_captions split on 2 processes: the ranks agree on a number of model calls (each a
    collective) and cut their groups to it; losses equal one process's masked call (RTOL)."""
    masked = train(
        model(),
        build_path("mixture", vocab_size=K),
        padded(),
        TrainConfig(**CFG),
        tmp_path,
        progress=False,
    ).losses
    for parallel in ("ddp", "fsdp"):
        got = read_losses(two_procs / f"split_{parallel}" / "losses.csv")
        assert close(got, masked, RTOL), (parallel, got, masked)
