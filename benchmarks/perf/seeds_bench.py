"""Seeds per CPU minute of the main job's training (ablations/path_shape.yaml, profile default),
by each lever of issue 23 item 1, measured side by side.

The shape: the small preset cut to 2 layers (MLP 256), K = 65 visual ids on the metric path,
batch 16 clips of 11 caption + 1 BOV + 4x4x4 visual tokens (76 a clip), one thread per worker.
Variants, timed in interleaved rounds within each worker process (round r times every variant
once, in turn), so a machine shared with other jobs slows all of them alike; each figure is the
median over rounds of the mean step time of a round:

- `eager`: ursa.train.train's own loop (today's default profile).
- `compile`: the same loop with `train.compile` (each block torch.compile'd,
  ursa.parallel.compile_blocks); `compile_first_steps_s` is the one-off cost per process (the
  first two steps of round 1, compilation included, with the inductor cache as the machine has
  it), `compile_first_steps_s_compiled` the same two steps once compiled (later rounds).
- `batched_x<S>`: the eager loop on S x 16 clips, per seed (/ S): the most any vectorisation of S
  seeds could give on this CPU (the same FLOPs as S seeds, one op dispatch instead of S).
- `vmap_x<S>`: S seeds' stacked parameters in one torch.func computation (functional_call +
  vmap + grad) on one shared batch, per seed; a lower bound on what a vmapped multi-seed step
  costs (each seed's own batch can only add work), AdamW replaced by an in-place SGD update
  (cheaper still).

`seeds_per_cpu_min` = 60 / (cpu seconds of one seed's `steps` training steps), where a worker
is one single-threaded process on its own core: with 2 workers both run the rounds at once and
each worker's figure is its own (the mean is reported). `speedup_vs_eager` divides by eager's
figure of the same worker count. The training budget is `STEPS` (today's 1,500) for every
variant; the step-count lever (a shorter schedule) is not a per-step figure and is reported by
the sizing notes (docs/main_job.md), not here.

Standalone: python -m benchmarks.perf --suite seeds [--quick]
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.train import TokenDataset, train
from ursa.train_config import TrainConfig

STEPS = 1500  # the default profile's training budget per seed
BATCH = 16
TEXT_LEN = 11
LATENT = (4, 4, 4)
K = 65
TEXT_VOCAB = 200
VECTOR_SEEDS = 4


def _config() -> URSAConfig:
    return URSAConfig.preset(
        "small",
        num_layers=2,
        intermediate_size=256,
        text_vocab_size=TEXT_VOCAB,
        visual_vocab_size=K,
    )


def _data(batch: int) -> TokenDataset:
    """N = 8 x `batch` random clips (text long (N, 11), ids long (N, 4, 4, 4)): every step of a
    round draws a new batch, as training does (random ids cost what real ones do)."""
    g = torch.Generator().manual_seed(0)
    n = batch * 8
    return TokenDataset(
        torch.randint(0, TEXT_VOCAB, (n, TEXT_LEN), generator=g),
        torch.ones(n, TEXT_LEN, dtype=torch.bool),
        torch.randint(0, K, (n, *LATENT), generator=g),
    )


def _path():
    embeddings = torch.randn(K, 8, generator=torch.Generator().manual_seed(0))
    return build_path("metric", vocab_size=K, embeddings=embeddings)


def _loop_step_s(batch: int, steps: int, compile: bool) -> tuple[float, float]:
    """(seconds per step of train()'s loop after two warm-up steps, seconds of those two steps)."""
    stamps: list[float] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            steps=steps + 3,
            batch_size=batch,
            lr=3e-3,
            warmup_steps=1,
            checkpoint_every=10**9,
            compile=compile,
        )
        train(
            URSAModel(_config(), seed=0),
            _path(),
            _data(batch),
            config,
            out,
            progress=False,
            on_step=lambda s, loss: stamps.append(time.perf_counter()),
            stop_after=steps + 2,
        )
    return (stamps[-1] - stamps[1]) / steps, stamps[1] - start


class _VmapSeeds:
    """S models' parameters stacked (leading dim S) and stepped by one vmapped grad computation."""

    def __init__(self, seeds: int) -> None:
        from torch.func import stack_module_state

        models = [URSAModel(_config(), seed=s) for s in range(seeds)]
        self.params, self.buffers = stack_module_state(models)
        self.base = URSAModel(_config(), seed=0).to("meta")
        self.data = _data(BATCH)
        self.seeds = seeds

    def step(self) -> None:
        from torch.func import functional_call, grad_and_value, vmap

        def loss(params, buffers, text, ids):
            logits = functional_call(self.base, (params, buffers), (text, ids))
            return F.cross_entropy(logits.flatten(0, -2), ids.flatten())

        batch = self.data.select(torch.arange(BATCH))
        grads, _ = vmap(grad_and_value(loss), in_dims=(0, 0, None, None))(
            self.params, self.buffers, batch.text_ids, batch.visual_ids
        )
        with torch.no_grad():
            for name, g in grads.items():
                self.params[name].sub_(1e-3 * g)


def _vmap_step_s(runner: _VmapSeeds, steps: int) -> float:
    runner.step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        runner.step()
    return (time.perf_counter() - start) / steps / runner.seeds


def _worker(out: str, rounds: int, steps: int) -> None:
    """One worker: `rounds` interleaved rounds of every variant; seconds per seed-step to `out`."""
    import warnings

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*batching rule.*")  # vmap's SDPA fallback, measured
    times: dict[str, list[float]] = {
        "eager": [],
        "compile": [],
        f"batched_x{VECTOR_SEEDS}": [],
        f"vmap_x{VECTOR_SEEDS}": [],
    }
    first: list[float] = []
    vmapped = _VmapSeeds(VECTOR_SEEDS)
    for _ in range(rounds):
        times["eager"].append(_loop_step_s(BATCH, steps, compile=False)[0])
        step_s, warm_s = _loop_step_s(BATCH, steps, compile=True)
        times["compile"].append(step_s)
        first.append(warm_s)
        batched_s = _loop_step_s(BATCH * VECTOR_SEEDS, steps, compile=False)[0]
        times[f"batched_x{VECTOR_SEEDS}"].append(batched_s / VECTOR_SEEDS)
        times[f"vmap_x{VECTOR_SEEDS}"].append(_vmap_step_s(vmapped, max(2, steps // 4)))
    Path(out).write_text(json.dumps({"times": times, "compile_first": first}))


def _workers(n: int, rounds: int, steps: int) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        outs = [str(Path(tmp) / f"{i}.json") for i in range(n)]
        procs = [ctx.Process(target=_worker, args=(o, rounds, steps)) for o in outs]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        if bad:
            raise RuntimeError(f"seeds suite: a worker exited with {bad[0]}")
        return [json.loads(Path(o).read_text()) for o in outs]


def figures(workers: int, rounds: int, steps: int) -> dict:
    """Per variant: median seconds per seed-step over rounds (mean over workers), seeds per CPU
    minute at STEPS steps, and the speedup over eager."""
    results = _workers(workers, rounds, steps)
    out: dict = {
        "workers": workers,
        "rounds": rounds,
        "steps_per_round": steps,
        # round 1 compiles (a fresh process: what every harness run pays); later reuse it
        "compile_first_steps_s": statistics.mean(r["compile_first"][0] for r in results),
        "compile_first_steps_s_compiled": statistics.mean(
            statistics.median(r["compile_first"][1:] or r["compile_first"]) for r in results
        ),
    }
    for name in results[0]["times"]:
        step_s = statistics.mean(statistics.median(r["times"][name]) for r in results)
        out[name] = {"step_ms_per_seed": 1e3 * step_s, "seeds_per_cpu_min": 60 / (STEPS * step_s)}
    for name in results[0]["times"]:
        eager = out["eager"]["seeds_per_cpu_min"]
        out[name]["speedup_vs_eager"] = out[name]["seeds_per_cpu_min"] / eager
    levers = ["compile", f"vmap_x{VECTOR_SEEDS}"]  # usable; batched is a bound, not a trainer
    best = max(levers, key=lambda n: out[n]["speedup_vs_eager"])
    out["best_lever"] = {"name": best, "speedup_vs_eager": out[best]["speedup_vs_eager"]}
    return out


def run(quick: bool = True, device: str = "cpu") -> dict:
    if device != "cpu":  # a GPU run of every suite must not fail here; its target: not measured
        return {
            "skipped": "the seeds suite measures the CPU main job (one thread per worker); "
            "run it with --device cpu"
        }
    rounds, steps = (2, 4) if quick else (5, 20)
    return {
        "shape": {
            "preset": "small",
            "num_layers": 2,
            "intermediate_size": 256,
            "batch": BATCH,
            "tokens_per_clip": TEXT_LEN + 1 + LATENT[0] * LATENT[1] * LATENT[2],
            "K": K,
            "steps_per_seed": STEPS,
            "vector_seeds": VECTOR_SEEDS,
        },
        "workers_1": figures(1, rounds, steps),
        "workers_2": figures(2, rounds, steps),
    }
