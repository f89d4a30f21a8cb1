"""Ablation specs: YAML -> validated pydantic models, with errors a human can act on.

A spec declares one fully described run (`base`), the axes that vary (`grid`, `zip`, `seeds`,
`search`), how to dispatch (`executor`), what to report (`report`) and size `profiles`
(smoke / default / full) given as dotted-key overrides. `include:` starts from other files.
Every problem raises `SpecError` (a ValueError) naming the file, the dotted key path, what was
expected and what was got, before any compute.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROFILES = ("smoke", "default", "full")
TASKS = ("t2v", "t2i", "i2v", "interpolation", "extrapolation", "long")


class SpecError(ValueError):
    """A spec is malformed; the message names file, key path, expectation and actual value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)



def Prob(default: float = 0.0) -> Any:  # noqa: N802 - reads like a type in field declarations
    """A probability field in [0, 1]."""
    return Field(default, ge=0.0, le=1.0)


class BenchmarkConfig(_Strict):
    """The embedded shapes benchmark: world (kwargs of benchmarks.shapes.WorldConfig) and suite sizes."""

    name: Literal["shapes"] = "shapes"
    world: dict[str, Any] = Field(default_factory=dict)
    train_size: int = Field(256, ge=1)
    eval_size: int = Field(16, ge=1)
    task_size: int = Field(8, ge=1)
    seed: int = 0


class TokenizerConfig(_Strict):
    kind: Literal["shapes"] = "shapes"
    codebook_size: int = Field(65, ge=2)
    seed: int = 0


class ModelConfig(_Strict):
    preset: Literal["tiny", "small", "base", "0.6B", "1.7B"] = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)
    init_from: str | None = None

    @field_validator("init_from")
    @classmethod
    def _checkpoint_exists(cls, path: str | None) -> str | None:
        if path is not None and not (Path(path) / "config.json").is_file():
            raise ValueError(f"a saved URSAModel directory (with config.json), got missing path {path!r}")
        return path


class PathConfig(_Strict):
    kind: Literal["metric", "mixture", "masked"] = "metric"
    c: float = Field(3.0, gt=0)
    alpha: float = Field(0.9, gt=0)
    exponent: float = Field(1.0, gt=0)
    calibrate: bool = False


class TrainConfig(_Strict):
    steps: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Prob(0.1)
    grad_clip: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0)
    shift_rule: Literal["fixed", "resolution"] = "fixed"
    frame_schedule: Literal["async", "sync"] = "async"
    p_first: float = Prob()
    p_first_last: float = Prob()
    p_first_k: float = Prob()
    p_uncond: float = Prob()  # caption dropout, for classifier-free guidance (sample.cfg_scale > 1)
    checkpoint_every: int = Field(50, ge=1)
    seed: int = 0  # set from the spec's `seeds` axis
    device: str = "cpu"
    bf16: bool = False

    @model_validator(mode="after")
    def _probabilities_sum(self) -> TrainConfig:
        total = self.p_first + self.p_first_last + self.p_first_k
        if total > 1.0 + 1e-9:
            raise ValueError(f"p_first + p_first_last + p_first_k must be <= 1, got {total:g}")
        return self


class SampleConfig(_Strict):
    steps: int = Field(25, ge=1)
    shift: float = Field(1.0, gt=0)
    shift_rule: Literal["fixed", "resolution"] = "fixed"
    cfg_scale: float = Field(1.0, ge=0)
    cfg_trunc: float = Prob(0.9)
    argmax_last: bool = False
    batch_size: int = Field(16, ge=1)
    tasks: list[Literal[TASKS]] = Field(default_factory=lambda: ["t2v"], min_length=1)  # type: ignore[valid-type]
    context_frames: int = Field(1, ge=1)
    seed: int = 0  # set from the spec's `seeds` axis


class ScoreConfig(_Strict):
    which: list[Literal["alignment", "quality", "fidelity", "tasks"]] = Field(
        default_factory=lambda: ["alignment", "quality", "tasks"], min_length=1)
    seed: int = 0


@functools.lru_cache(maxsize=256)
def _world_problem(world_json: str) -> str | None:
    """Why benchmarks.shapes.WorldConfig(**world) is invalid, or None (cached: grids repeat worlds)."""
    from benchmarks.shapes.world import WorldConfig

    try:
        WorldConfig(**json.loads(world_json))
    except TypeError as exc:
        fields = list(WorldConfig.__dataclass_fields__)
        bad = [k for k in json.loads(world_json) if k not in fields]
        hint = _suggest(bad[0], fields) if bad else ""
        return f"keys among {', '.join(fields)}.{hint} ({exc})"
    except ValueError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=256)
def _world_frames(world_json: str) -> int:
    """Frames per clip of a valid world (a long video's sliding-window length)."""
    from benchmarks.shapes.world import WorldConfig

    return WorldConfig(**json.loads(world_json)).frames


@functools.lru_cache(maxsize=64)
def _codebook_problem(size: int) -> str | None:
    """The shapes tokenizer needs K = 1 + C * (M - 1) (C colours, M >= 2 patch masks)."""
    from benchmarks.shapes.world import PALETTE  # numpy only: validation must not wait for torch

    NUM_COLOURS = len(PALETTE) - 1  # noqa: N806 - as benchmarks.shapes.tokenizer.NUM_COLOURS
    if size < 1 + NUM_COLOURS or (size - 1) % NUM_COLOURS:
        return f"tokenizer.codebook_size = 1 + {NUM_COLOURS} * (M - 1) with M >= 2 (e.g. 65, 129, 509), got {size}"
    return None


class RunConfig(_Strict):
    """One fully described run."""

    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    path: PathConfig = Field(default_factory=PathConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)

    @model_validator(mode="after")
    def _combinations(self) -> RunConfig:
        problem = _world_problem(json.dumps(self.benchmark.world, sort_keys=True, default=str))
        if problem:
            raise ValueError(f"benchmark.world to be a valid shapes world: {problem}")
        problem = _codebook_problem(self.tokenizer.codebook_size)
        if problem:
            raise ValueError(problem)
        head = self.model.overrides.get("visual_vocab_size")
        if head is not None and head != self.tokenizer.codebook_size:
            raise ValueError(f"model.overrides.visual_vocab_size ({head!r}) must equal the tokenizer's "
                             f"K = tokenizer.codebook_size ({self.tokenizer.codebook_size})")
        frames = _world_frames(json.dumps(self.benchmark.world, sort_keys=True, default=str))
        if "long" in self.sample.tasks and not self.sample.context_frames < frames:
            raise ValueError(f"sample.context_frames ({self.sample.context_frames}) must be < the window length "
                             f"benchmark.world.frames ({frames}) for the long task")
        pinned = self.model.overrides.get("mask_token")
        if pinned is not None and bool(pinned) != (self.path.kind == "masked"):
            raise ValueError(f"model.overrides.mask_token={pinned!r} contradicts path.kind={self.path.kind!r} "
                             "(the mask token exists exactly for the masked path; leave it unset)")
        return self


class SearchParam(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} parameter needs low < high, got low={self.low!r}, high={self.high!r}")
        elif self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0, got {self.low!r}")
        return self


class SearchConfig(_Strict):
    params: dict[str, SearchParam] = Field(min_length=1)
    n_trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "grid", "random"] = "tpe"
    sampler_seed: int = 0
    objective: str
    direction: Literal["maximize", "minimize"] = "maximize"
    storage: str | None = None
    study_name: str | None = None
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    enqueue_calibrated: bool = False


class SlurmConfig(_Strict):
    partition: str | None = None
    gpus_per_node: int = Field(0, ge=0)
    cpus_per_task: int = Field(2, ge=1)
    mem_gb: float = Field(8, gt=0)
    array_parallelism: int = Field(16, ge=1)
    additional: dict[str, Any] = Field(default_factory=dict)


class ExecutorConfig(_Strict):
    kind: Literal["inprocess", "local", "slurm"] = "local"
    max_parallel: int = Field(2, ge=1)
    timeout_min: float = Field(60, gt=0)
    threads: int = Field(0, ge=0)  # torch threads per run; 0 = cores // max_parallel
    max_requeue: int = Field(3, ge=0)  # timeouts / preemptions a run may resume from (local and slurm)
    folder: str | None = None  # submitit job folder, relative to the runs root (default <spec>/<profile>/_submitit)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)


class ReportConfig(_Strict):
    metrics: list[str] = Field(default_factory=list)
    x: str | None = None
    plots: list[Literal["metric_vs_param", "optimization_history", "contour", "linearity",
                        "loss_curves", "frame_strips"]] = Field(default_factory=lambda: ["loss_curves", "frame_strips"])
    paper: dict[str, dict[str, float]] = Field(default_factory=dict)


class Spec(_Strict):
    """A validated ablation spec; `source` is the YAML file it came from."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    base: RunConfig = Field(default_factory=RunConfig)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: list[dict[str, list[Any]]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    search: SearchConfig | None = None
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    profiles: dict[Literal[PROFILES], dict[str, Any]] = Field(default_factory=dict)  # type: ignore[valid-type]
    source: str = "<memory>"

    @field_validator("grid")
    @classmethod
    def _grid_nonempty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid axis {key!r} needs at least one value, got an empty list")
        return grid

    @field_validator("zip")
    @classmethod
    def _zip_lengths(cls, groups: list[dict[str, list[Any]]]) -> list[dict[str, list[Any]]]:
        for i, group in enumerate(groups):
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1 or 0 in lengths.values():
                raise ValueError(f"zip[{i}]: axes that move together need equal non-zero lengths, got {lengths}")
        return groups


# ----------------------------------------------------------------------------- loading

def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the pydantic model reached by following `loc` (for suggestions)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None) if field else None
        ann = next((a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_error(source: str, prefix: str, err: ValidationError, model: type[BaseModel]) -> SpecError:
    """Turn the first pydantic error into one paragraph: file, dotted key, expected, got."""
    e = err.errors()[0]
    loc = tuple(p for p in e["loc"] if p not in ("function-after",))
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    path = f"{prefix} (run-config key {dotted})" if prefix and dotted else prefix or dotted
    if e["type"] == "extra_forbidden":
        hint = _suggest(str(loc[-1]), _fields_at(model, loc[:-1]))
        return SpecError(f"{source}: unknown key {path!r}.{hint} Expected one of: {', '.join(_fields_at(model, loc[:-1]))}.")
    if e["type"] == "missing":
        return SpecError(f"{source}: {path or '<top level>'}: required key is missing.")
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    msg = f"a value {msg}" if msg.startswith(("greater", "less")) else msg
    more = f" ({len(err.errors()) - 1} more problem(s) after this one)" if len(err.errors()) > 1 else ""
    got = "" if isinstance(e.get("input"), dict) and e["type"] == "value_error" else f"; got {_short(e.get('input'))}"
    return SpecError(f"{source}: {path or '<top level>'}: expected {msg}{got}.{more}")


def _check_keys(node: Any, source: str, path: str = "") -> None:
    """YAML allows non-string mapping keys; specs do not."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise SpecError(f"{source}: {path or '<top level>'}: expected string keys, got key {_short(k)} "
                                f"of type {type(k).__name__}.")
            _check_keys(v, source, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_keys(v, source, f"{path}[{i}]")


def deep_merge(base: dict, top: dict) -> dict:
    """Recursively merge mappings; `top` wins, lists and scalars are replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path, stack: tuple[Path, ...] = ()) -> dict:
    """Read a spec file with its `include:` chain merged (relative paths, cycles detected).

    base / executor / report / profiles merge recursively; grid, zip, seeds, search replace."""
    source = str(path)
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise SpecError(f"{source}: include: expected an acyclic include chain, got a cycle: {chain}.")
    if not path.is_file():
        where = f"{stack[-1]}: include" if stack else "spec"
        raise SpecError(f"{where}: expected an existing YAML file, got missing path {source!r}.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: expected valid YAML, got a parse error: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: expected UTF-8 text, got undecodable bytes ({exc.reason}).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: <top level>: expected a mapping of spec keys, got {type(data).__name__}.")
    _check_keys(data, source)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise SpecError(f"{source}: include: expected a file path or a list of file paths, got {_short(includes)}.")
    merged: dict = {}
    for inc in includes:
        merged = _merge_spec(merged, read_yaml((path.parent / inc).resolve(), (*stack, path)))
    return _merge_spec(merged, data)


MERGED_KEYS = ("base", "executor", "report", "profiles")  # deep-merged on include; other keys are replaced


def _merge_spec(base: dict, top: dict) -> dict:
    """Include semantics: sections describing one run merge recursively, axes (grid, zip, seeds, search) replace."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if k in MERGED_KEYS and isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_spec(data: Any, source: str = "<memory>") -> Spec:
    """Validate an already-loaded mapping (includes resolved) into a Spec, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: <top level>: expected a mapping of spec keys, got {type(data).__name__}.")
    _check_keys(data, source)
    if "include" in data:
        raise SpecError(f"{source}: include: only allowed in spec files (resolved by load_spec).")
    try:
        spec = Spec.model_validate({**data, "source": source})
    except ValidationError as err:
        raise format_error(source, "", err, Spec) from None
    from harness.expand import check_axes  # axes are checked against RunConfig by the expander

    check_axes(spec)
    return spec


def load_spec(path: str | Path) -> Spec:
    """Load, merge includes, and validate a spec file."""
    p = Path(path).resolve()
    return parse_spec(read_yaml(p), source=str(Path(path)))
