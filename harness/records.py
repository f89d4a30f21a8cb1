"""Typed run records: a planned run (RunSpec), the state of a run and its result.json, read and
written in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

from harness.spec import RunConfig


class RunState(str, Enum):  # noqa: UP042 - a StrEnum would print members differently
    """pending -> running -> done | failed | cancelled | interrupted.

    A killed run is resumed from `running`; `cancelled` (SLURM) and `interrupted` (Ctrl-C during
    `harness run`) are resumed the same way by the next run; `failed` only with --retry-failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """done or failed: a run in this state is not resumed without --retry-failed / --force."""
        return self in (RunState.DONE, RunState.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass
class RunResult:
    """One run's result.json: identity, axis values, state, metrics and, on failure, the error.

    `reference` names the reference generator of a floor / ceiling row (None for trained or
    evaluated arms); `stage_ids` the shared train / sample stages it used; `machine` what decides
    the CPU results of the process that ran it (harness.cpu.facts: kernel level, pins, threads,
    versions; the train stage's done.json holds those of the process that trained); `skipped` the
    held-out items the benchmark left out of every suite (Benchmark.eval_skipped)."""

    run_id: str
    spec: str
    profile: str
    arm: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    state: RunState = RunState.PENDING
    metrics: dict[str, float] = field(default_factory=dict)
    curve: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # training step -> metrics there
    error: dict[str, str] | None = None  # {"message", "traceback"}
    reference: str | None = None
    stage_ids: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(
        default_factory=list
    )  # held-out items left out of the scores: {"key", "reason"}
    trial: int | None = None  # Optuna trial number of a search run
    started: float | None = None
    finished: float | None = None
    pid: int | None = None

    @property
    def done(self) -> bool:
        return self.state == RunState.DONE

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["state"] = RunState(kwargs.get("state", RunState.PENDING))
        return cls(**kwargs)

    def fail(self, state: RunState, message: str, traceback: str = "") -> RunResult:
        self.state = state
        self.error = {"message": message.strip()[:2000], "traceback": traceback[-20000:]}
        return self


@dataclass
class RunSpec:
    """One run of a spec: its arm (grid/zip point), seed, axis values and validated config."""

    spec: str
    profile: str
    arm: str
    seed: int
    params: dict[str, Any]
    config: RunConfig
    run_id: str = ""  # the score-stage id (harness.identity.stage_ids)
    stage_ids: dict[str, str] = field(default_factory=dict)  # {"train", "sample", "score"}
    reference: str | None = None  # a reference generator's name for floor / ceiling rows
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. search trial number
