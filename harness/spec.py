"""Ablation specs: the schema of a run config and of a spec, with errors a human can act on.

A spec declares one fully described run (`base`), the axes that vary (`grid`, `zip`, `seeds`,
`search`), how to dispatch (`executor`), what to report (`report`) and size `profiles`
(smoke / ci / default / full) given as dotted-key overrides. Reading YAML files (`include:`,
`plugins:`) is harness/specfile.py; expanding axes is harness/expand.py.

Each setting is declared once: `train:` is `ursa.train_config.TrainConfig` itself, `model:` is
`ursa.config.ModelConfig`, `path:` the config of a registered path kind (`ursa.path_config.PathConfig`:
each kind takes only its own keys) and `sample:` extends `ursa.sample.SamplerConfig`, so the spec
validator and the code that consumes a setting share one schema. `benchmark:`, `tokenizer:` and
`text_tokenizer:` are plug-in sections: `name` picks a registered component (harness/plugins.py)
and every other key is one of that component's typed options, validated by `resolve_run`. Every
problem raises `SpecError` (a ValueError) naming the file, the dotted key path, what was expected
and what was got, before any compute.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from harness import plugins
from ursa.config import ModelConfig
from ursa.path_config import PathConfig
from ursa.sample import SamplerConfig
from ursa.train_config import TrainConfig

PROFILES = ("smoke", "ci", "default", "full")
LABELS = "labels"  # the key in a zip group (and a named grid axis) that names its points
SEED_BOUND = 2**63  # seeds are in [0, SEED_BOUND): what torch.manual_seed takes
MAX_RUNS = 10_000  # default of a spec's `max_runs`
MAX_NAME = 64  # characters of a spec name (it names directories under the runs and reports roots)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SpecError(ValueError):
    """A spec is malformed; the message names file, key path, expectation and actual value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class Section(BaseModel):
    """A plug-in section: `name` picks a registered component, the other keys are its options."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SampleConfig(SamplerConfig):
    """`ursa.sample.SamplerConfig` plus the evaluation protocol: which tasks, batch, long-video context."""

    batch_size: int = Field(16, ge=1)
    tasks: list[str] = Field(
        default_factory=lambda: ["t2v"], min_length=1
    )  # registered generation tasks
    context_frames: int = Field(1, ge=1)  # latent frames carried between long-video windows
    seed: int = Field(0, ge=0, lt=SEED_BOUND)  # set from the spec's `seeds` axis

    def sampler_config(self) -> SamplerConfig:
        """The part ursa's sampler consumes (every SamplerConfig field, nothing else)."""
        return SamplerConfig(**self.model_dump(include=set(SamplerConfig.model_fields)))


class ScoreConfig(_Strict):
    which: list[str] = Field(min_length=1)  # registered scorers
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # scorer name -> its options
    denoising_bins: int = Field(
        0, ge=0, le=100
    )  # held-out cross-entropy at this many noise levels (0: off)
    seed: int = Field(0, ge=0, lt=SEED_BOUND)  # seed of the scorers' own randomness


class RunConfig(_Strict):
    """One fully described run (plug-in sections resolved by `resolve_run`)."""

    benchmark: Section
    tokenizer: Section = Field(default_factory=Section)
    text_tokenizer: Section = Field(default_factory=Section)
    model: ModelConfig = Field(default_factory=ModelConfig)
    # the probability path (docs/math.md): the config of a registered kind (ursa.paths)
    path: SerializeAsAny[PathConfig] = Field(default_factory=lambda: PathConfig.model_validate({}))
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    score: ScoreConfig

    @model_validator(mode="after")
    def _combinations(self) -> RunConfig:
        pinned = self.model.overrides.get("mask_token")
        if pinned is not None and bool(pinned) != self.path.mask_token:
            raise ValueError(
                f"model.overrides.mask_token={pinned!r} contradicts path.kind={self.path.kind!r} "
                "(the mask token exists exactly for paths whose source is the mask id; leave it unset)"
            )
        if self.model.init_format == "release" and self.path != PathConfig.model_validate({}):
            raise ValueError(
                "no path settings with model.init_from.format release (the release's scheduler/ "
                f"defines the path: kind, c, alpha and codebook), got path {_short(self.path.model_dump())}"
            )
        if self.train.steps == 0 and not self.model.init_from:
            raise ValueError(
                "train.steps 0 (evaluation only) to come with model.init_from (the model to evaluate)"
            )
        if len(set(self.sample.tasks)) != len(self.sample.tasks):
            raise ValueError(f"sample.tasks without duplicates, got {_short(self.sample.tasks)}")
        if self.model.init_format == "release":
            from ursa.release import release_shift

            if self.sample.cfg_below_one:
                raise ValueError(
                    f"sample.cfg_below_one to be false with model.init_from."
                    f"format release (the authors' pipeline guides only when the "
                    f"scale is > 1; below it they sample unguided), got cfg_scale "
                    f"{self.sample.cfg_scale:g} with cfg_below_one true; set "
                    f"cfg_scale 1"
                )
            # a release samples (the authors train) with its scheduler's shift unless set here
            for section in (self.sample, self.train):
                if "shift" not in section.model_fields_set:
                    section.shift = release_shift(self.model.init_from)
        if self.sample.guided and self.train.p_uncond == 0 and not self.model.init_from:
            raise ValueError(
                f"sample.cfg_scale {self.sample.cfg_scale:g} (classifier-free guidance) to come with "
                f"train.p_uncond > 0: with p_uncond 0 the captions are never dropped in training, so "
                f"the model has no unconditional prediction for guidance to push away from; set "
                f"train.p_uncond (e.g. 0.1), or sample.cfg_scale 1 for no guidance"
            )
        return self

    @property
    def evaluation_only(self) -> bool:
        """No training stage: the run samples and scores `model.init_from` as it is."""
        return self.train.steps == 0 and self.model.init_from is not None


class SearchParam(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None  # float / int: the range's low end
    high: float | None = None  # float / int: the range's high end (> low)
    log: bool = False  # sample on a log scale (low > 0)
    step: float | None = None  # discretisation step of a float / int range
    choices: list[Any] | None = None  # categorical: the values

    @model_validator(mode="after")
    def _bounds(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(
                f"a {self.type} parameter needs low < high, got low={self.low!r}, high={self.high!r}"
            )
        elif self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0, got {self.low!r}")
        return self


class SearchConfig(_Strict):
    params: dict[str, SearchParam] = Field(
        min_length=1
    )  # dotted run-config key -> its search range
    n_trials: int = Field(20, ge=1)  # trials of the Optuna study (each runs every seed)
    sampler: Literal["tpe", "grid", "random"] = "tpe"  # Optuna sampler
    sampler_seed: int = Field(0, ge=0, lt=2**32)  # numpy's seed range (Optuna's samplers)
    objective: str  # the metric to optimise (a scorer's metric; mean over seeds)
    direction: Literal["maximize", "minimize"] = "maximize"
    storage: str | None = (
        None  # Optuna storage URL (default: SQLite in the run store; postgresql://... to share)
    )
    study_name: str | None = None  # default: <spec>/<profile>
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list
    )  # trials to evaluate first ({param: value})
    enqueue_calibrated: bool = False  # also enqueue the calibrated (c, alpha) of the metric path


class SlurmConfig(_Strict):
    partition: str | None = None  # sbatch --partition (default: the cluster's)
    gpus_per_node: int = Field(0, ge=0)  # GPUs of each run's job
    cpus_per_task: int = Field(
        2, ge=1
    )  # also the run's torch threads unless executor.threads is set
    mem_gb: float = Field(8, gt=0)  # memory of each run's job
    array_parallelism: int = Field(
        16, ge=1
    )  # runs of the job array in flight at once (capped by max_parallel)
    additional: dict[str, Any] = Field(
        default_factory=dict
    )  # any other sbatch option (e.g. account, qos)


class ExecutorConfig(_Strict):
    kind: str = "local"  # a registered executor: inprocess, local, slurm (harness/executors/)
    max_parallel: int = Field(2, ge=1)  # runs in flight at once (--max-parallel overrides)
    timeout_min: float = Field(
        60, gt=0
    )  # per run; a timed-out run is requeued and resumes (max_requeue)
    threads: int = Field(0, ge=0)  # torch threads per run; 0 = cores // max_parallel
    max_requeue: int = Field(
        3, ge=0
    )  # timeouts / preemptions a run may resume from (local and slurm)
    folder: str | None = (
        None  # submitit job folder, relative to the runs root (default <spec>/<profile>/_submitit)
    )
    # processes that train each run with torch.distributed (one per GPU): tasks_per_node on each
    # of `nodes` nodes; the global batch stays train.batch_size (ursa/distributed.py)
    tasks_per_node: int = Field(1, ge=1)
    nodes: int = Field(1, ge=1)  # > 1 only with kind slurm
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        plugins.EXECUTORS.get(kind)  # PluginError (a ValueError) names the registered ones
        return kind

    @model_validator(mode="after")
    def _one_node_unless_slurm(self) -> ExecutorConfig:
        if self.nodes > 1 and self.kind != "slurm":
            raise ValueError(
                f"nodes: expected 1 with executor kind {self.kind!r} (several nodes need kind slurm), "
                f"got {self.nodes}"
            )
        return self


class PrimaryConfig(_Strict):
    """The pre-declared primary endpoint: the verdict's first sentence tests it alone."""

    metric: str | None = None  # default: report.headline
    # final: end of training; curve_mean: mean over the learning curve (train.snapshots); steps_to:
    # training steps until a run's curve reaches `level` (interpolated between snapshots)
    statistic: Literal["final", "curve_mean", "steps_to"] = "final"
    level: float | None = None  # steps_to: the metric value to reach
    # the arm tested against report.baseline (a label or "key=value" parts); default: each other
    # arm, Holm-corrected among themselves; with report.compare_within: the change of that arm's
    # gap between the axis' first and last value
    arm: str | None = None

    @model_validator(mode="after")
    def _level_with_steps_to(self) -> PrimaryConfig:
        if (self.statistic == "steps_to") != (self.level is not None):
            raise ValueError(
                f"a level with statistic steps_to and only then (steps_to: the steps "
                f"until a run's curve reaches it), got statistic {self.statistic!r} "
                f"with level {self.level!r}"
            )
        return self


class TrendConfig(_Strict):
    """With report.compare_within: the change, between that axis' first and last values, of the
    headline's least-squares slope against a numeric axis (in log of its values with `log`), a
    linear contrast (harness.stats.contrast). A positive change moves the best value of the axis
    up, e.g. "is the best shift larger for longer clips"."""

    axis: str  # a numeric grid or zip axis (e.g. train.shift)
    arms: str | None = None  # the arms that make the slope ("key=value" parts; default: every arm)
    log: bool = True  # slope against log(value) (values > 0)


class ReportConfig(_Strict):
    headline: str | None = None  # the metric the verdict is about (e.g. alignment)
    baseline: str | None = (
        None  # the arm every other arm is paired against: a label or "key=value" parts
    )
    primary: PrimaryConfig | None = None  # default: report.headline at the end of training
    # an axis: the verdict is given per value of it (e.g. clip length); each arm is paired with
    # the baseline arm of its own setting of the other axes (e.g. speed)
    compare_within: str | None = None
    trend: TrendConfig | None = (
        None  # with compare_within: the change of a slope along another axis
    )
    metrics: list[str] = Field(
        default_factory=list
    )  # metrics shown in tables and plots (default: all)
    x: str | None = None  # the axis of metric_vs_param plots (default: the first grid axis)
    # {group: metrics}: each metric's slope against log10 model parameters (harness/scaling.py)
    scaling: dict[str, list[str]] = Field(default_factory=dict)
    plots: list[
        Literal[
            "metric_vs_param",
            "optimization_history",
            "contour",
            "linearity",
            "loss_curves",
            "frame_strips",
            "learning_curves",
            "denoising",
            "scaling",
        ]
    ] = Field(
        default_factory=lambda: ["loss_curves", "frame_strips", "learning_curves", "denoising"]
    )
    paper: dict[str, dict[str, float]] = Field(
        default_factory=dict
    )  # {label: {arm: value}} shown beside ours


class GridAxis(_Strict):
    """A grid axis whose values have names: `{values: [...], labels: [...]}`, one label per value.
    An arm's label joins its axes' names (`key=value` for an axis without them) with ', '."""

    values: list[Any]  # the axis' values, as a plain grid axis lists them
    labels: list[str]  # one distinct, non-empty name per value, in the same order

    @model_validator(mode="after")
    def _one_label_per_value(self) -> GridAxis:
        if (
            len(self.labels) != len(self.values)
            or not all(n.strip() for n in self.labels)
            or _first_repeat(self.labels) is not None
        ):
            raise ValueError(
                f"one distinct, non-empty name per value ({len(self.values)} "
                f"value{'s' * (len(self.values) != 1)}: {_short(self.values, 60)}; each names "
                f"its arms in every table and plot), got {len(self.labels)}: {_short(self.labels, 60)}"
            )
        return self


class Spec(_Strict):
    """A validated ablation spec; `source` is the YAML file it came from."""

    name: str  # one path component: runs/<name>/, reports/<name>/
    description: str = ""  # shown at the top of the report
    plugins: list[str] = Field(
        default_factory=list
    )  # modules to import first (they register components)
    base: RunConfig  # the run config every arm starts from
    # dotted key -> values (or {values: [...], labels: [...]}, naming them); arms: the product of the axes
    grid: dict[str, list[Any] | GridAxis] = Field(default_factory=dict)
    # groups of keys varied together (equal lengths); `labels:` in a group names its points' arms
    zip: list[dict[str, list[Any]]] = Field(default_factory=list)
    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1
    )  # every arm runs once per seed
    max_runs: int = Field(
        MAX_RUNS, ge=1
    )  # grid x zip x seeds (and search trials x seeds) may not exceed it
    search: SearchConfig | None = None
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    # smoke / ci / default / full: dotted overrides of the spec (e.g. base.train.steps, seeds)
    profiles: dict[Literal[PROFILES], dict[str, Any]] = Field(default_factory=dict)  # type: ignore[valid-type]
    source: str = "<memory>"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if len(name) > MAX_NAME:
            raise ValueError(
                f"a spec name of at most {MAX_NAME} characters (it names directories), got "
                f"{len(name)} characters"
            )
        if not _NAME.fullmatch(name):
            raise ValueError(
                "a spec name that is one safe path component: letters, digits, '_', '.' and '-', "
                "starting with a letter or digit (not '.', '..', a path, or '_...', which the run "
                "store keeps for _stages, _cache and _submitit)"
            )
        if name.lower().startswith("index.sqlite"):
            raise ValueError(
                "a spec name other than the run store's index (index.sqlite at the runs root)"
            )
        return name

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        bad = next((s for s in seeds if not 0 <= s < SEED_BOUND), None)
        if bad is not None:
            raise ValueError(f"seeds in [0, 2**63) (what torch.manual_seed takes), got {bad}")
        twice = _first_repeat(seeds)
        if twice is not None:
            raise ValueError(
                f"distinct seeds (a repeated seed repeats the same runs), got {seeds[twice]} twice"
            )
        return seeds

    @field_validator("grid", mode="before")
    @classmethod
    def _named_axes(cls, grid: Any) -> Any:
        """An axis written as a mapping is a GridAxis; its errors name the axis (not pydantic's
        union of a list and a mapping)."""
        if not isinstance(grid, dict):
            return grid
        out = {}
        for key, axis in grid.items():
            if isinstance(axis, dict):
                try:
                    axis = GridAxis.model_validate(axis)
                except ValidationError as err:
                    e = err.errors()[0]
                    if e["type"] == "value_error":  # _one_label_per_value's
                        raise ValueError(
                            f"{LABELS} of grid axis {key!r}: {e['msg'].removeprefix('Value error, ')}"
                        ) from None
                    raise ValueError(
                        f"grid axis {key!r} as a list of values or {{values: [...], {LABELS}: [...]}}, "
                        f"got {_short(axis)} ({'.'.join(map(str, e['loc']))}: {e['msg']})"
                    ) from None
            out[key] = axis
        return out

    @property
    def grid_values(self) -> dict[str, list[Any]]:
        """Each grid axis' values, named or not."""
        return {k: a.values if isinstance(a, GridAxis) else a for k, a in self.grid.items()}

    @field_validator("grid")
    @classmethod
    def _grid_nonempty(
        cls, grid: dict[str, list[Any] | GridAxis]
    ) -> dict[str, list[Any] | GridAxis]:
        for key, axis in grid.items():
            values = axis.values if isinstance(axis, GridAxis) else axis
            if not values:
                raise ValueError(f"grid axis {key!r} needs at least one value, got an empty list")
            twice = _first_repeat(values)
            if twice is not None:
                raise ValueError(
                    f"distinct values on grid axis {key!r} (a repeated value repeats its arm), got "
                    f"{_short(values[twice])} twice"
                )
        return grid

    @field_validator("zip")
    @classmethod
    def _zip_lengths(cls, groups: list[dict[str, list[Any]]]) -> list[dict[str, list[Any]]]:
        for i, group in enumerate(groups):
            if not set(group) - {LABELS}:
                raise ValueError(
                    f"zip[{i}]: at least one axis (dotted key: list of values) in each group, got an "
                    f"empty group (it would expand to no runs at all)"
                )
            names = group.get(LABELS, [])
            if LABELS in group and not (
                all(isinstance(n, str) and n.strip() for n in names)
                and _first_repeat(names) is None
            ):
                raise ValueError(
                    f"zip[{i}].{LABELS}: one distinct, non-empty name per point (each "
                    f"names an arm in every table and plot), got {_short(names)}"
                )
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1 or 0 in lengths.values():
                raise ValueError(
                    f"zip[{i}]: axes that move together need equal non-zero lengths, got {lengths}"
                )
            points = list(zip(*group.values()))
            twice = _first_repeat(points)
            if twice is not None:
                point = ", ".join(f"{k}={_short(v)}" for k, v in zip(group, points[twice]))
                raise ValueError(
                    f"zip[{i}]: distinct points (a repeated point repeats its arm), got ({point}) "
                    f"twice"
                )
        return groups


def zip_keys(group: dict[str, list[Any]]) -> list[str]:
    """The run-config keys of a zip group (its `labels:` aside)."""
    return [k for k in group if k != LABELS]


def _first_repeat(values: list) -> int | None:
    """Index of the first value equal to an earlier one (compared as JSON, so lists and mappings count)."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        try:
            key = json.dumps(value, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            key = repr(value)
        if key in seen:
            return i
        seen.add(key)
    return None


# ----------------------------------------------------------------------------- errors


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _variant(model: type[BaseModel], data: Any) -> type[BaseModel]:
    """The class that validates `data` for `model`: a model with `variant(data)` (the `path:`
    section: one config class per registered kind) names it; None if data names none."""
    pick = getattr(model, "variant", None)
    if pick is None:
        return model
    try:
        return pick(data)
    except ValueError:  # an unknown kind: its own error is reported
        return model


def _model_at(model: type[BaseModel], loc: tuple, data: Any = None) -> type[BaseModel] | None:
    """The pydantic model reached by following `loc` through `model` and `data` (for suggestions)."""
    model = _variant(model, data)
    for part in loc:
        if isinstance(
            part, int
        ):  # an index into a list of models: the list's field named the model
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None) if field else None
        ann = next(
            (
                a
                for a in getattr(ann, "__args__", ())
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            ann,
        )
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        data = data.get(part) if isinstance(data, dict) else None
        model = _variant(ann, data)
    return model


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _key_path(prefix: str, loc: tuple) -> str:
    """`base.train.lr`, or `grid.train.lr[1] (run-config key train.lr)` when `prefix` says where a run came from."""
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    return f"{prefix} (run-config key {dotted})" if prefix and dotted else prefix or dotted


def _bool_for_number(ann: Any, value: Any, loc: tuple = ()) -> tuple | None:
    """Where the first YAML boolean stands in for a number in `value` checked against the type
    `ann` (pydantic would read `true` as 1), or None. Walks models, lists and mappings."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return _bool_for_number(args[0], value, loc)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if isinstance(value, bool):
            return loc if bool not in options and any(a in (int, float) for a in options) else None
        return next(
            (hit for a in options if (hit := _bool_for_number(a, value, loc)) is not None), None
        )
    if isinstance(value, bool):
        return loc if ann in (int, float) else None
    if origin in (list, tuple, set, frozenset) and isinstance(value, list) and args:
        items = args if origin is tuple and Ellipsis not in args else (args[0],) * len(value)
        return next(
            (
                hit
                for i, (a, v) in enumerate(zip(items, value))
                if (hit := _bool_for_number(a, v, (*loc, i))) is not None
            ),
            None,
        )
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return next(
            (
                hit
                for k, v in value.items()
                if (hit := _bool_for_number(args[1], v, (*loc, k))) is not None
            ),
            None,
        )
    if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(value, dict):
        fields = _variant(ann, value).model_fields
        return next(
            (
                hit
                for k, v in value.items()
                if k in fields
                and (hit := _bool_for_number(fields[k].annotation, v, (*loc, k))) is not None
            ),
            None,
        )
    return None


def validate_model(
    model: type[BaseModel], data: Any, source: str, where: str = "", section: tuple[str, ...] = ()
) -> Any:
    """`model.model_validate(data)` with its errors as one SpecError paragraph (see format_error), and
    numbers strict: a YAML boolean (true / yes / on) where a number is expected is an error, not 1."""
    loc = _bool_for_number(model, data)
    if loc is not None:
        value = data
        for part in loc:
            value = value[part]
        raise SpecError(
            f"{source}: {_key_path(where, section + loc)}: expected a number, got {value!r} (YAML reads "
            f"true/false, yes/no and on/off as booleans)."
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise format_error(source, where, err, model, section=section, data=data) from None


def format_error(
    source: str,
    prefix: str,
    err: ValidationError,
    model: type[BaseModel],
    section: tuple[str, ...] = (),
    data: Any = None,
) -> SpecError:
    """Turn the first pydantic error into one paragraph: file, dotted key, expected, got.

    `section`: the key path of `model` inside the run config (a plug-in's options live under
    e.g. ("benchmark",)), prepended to the error's location."""
    e = err.errors()[0]
    own = tuple(p for p in e["loc"] if p not in ("function-after",))  # inside `model`
    loc = section + own
    path = _key_path(prefix, loc)
    if e["type"] == "extra_forbidden":
        at = _model_at(model, own[:-1], data)
        fields = list(at.model_fields) if at else []
        hint = _suggest(str(loc[-1]), fields)
        kind = (
            at.model_fields["kind"].default if at and hasattr(at, "variant") else None
        )  # a kind's own keys
        of = (
            f" (the keys of {'.'.join(map(str, loc[:-1]))}.kind {kind!r})"
            if isinstance(kind, str)
            else ""
        )
        return SpecError(
            f"{source}: unknown key {path!r}.{hint} Expected one of{of}: {', '.join(fields)}."
        )
    if e["type"] == "missing":
        return SpecError(f"{source}: {path or '<top level>'}: required key is missing.")
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    msg = f"a value {msg}" if msg.startswith(("greater", "less")) else msg
    more = (
        f" ({len(err.errors()) - 1} more problem(s) after this one)"
        if len(err.errors()) > 1
        else ""
    )
    got = (
        ""
        if isinstance(e.get("input"), dict) and e["type"] == "value_error"
        else f"; got {_short(e.get('input'))}"
    )
    return SpecError(f"{source}: {path or '<top level>'}: expected {msg}{got}.{more}")


# ----------------------------------------------------------------------------- plug-in sections


def _resolve_section(
    config: RunConfig,
    key: str,
    registry: plugins.Registry,
    default: str | None,
    source: str,
    where: str,
) -> type[plugins.Component]:
    """Look up the component a section names and replace its options by the validated, defaulted
    ones (so an option left at its default and one spelled out give the same run id)."""
    section: Section = getattr(config, key)
    name = section.name or default
    if name is None:
        raise SpecError(
            f"{source}: {where or key}: {key}.name: expected the name of a registered "
            f"{registry.kind} ({', '.join(registry.names()) or 'none'}), got none."
        )
    try:
        component = registry.get(name)
    except plugins.PluginError as exc:
        raise SpecError(f"{source}: {where + ': ' if where else ''}{exc}") from None
    options = validate_model(component.Options, section.options(), source, where, section=(key,))
    setattr(config, key, Section(name=name, **options.model_dump(mode="json")))
    return component


def resolve_run(data: dict[str, Any], source: str = "<memory>", where: str = "") -> RunConfig:
    """Validate one run config: schema, then every plug-in it names (registered, options valid,
    applicable to the benchmark and tasks), then checks across sections. Raises SpecError."""
    config = validate_model(RunConfig, data, source, where)
    here = f"{where}: " if where else ""
    bench = _resolve_section(config, "benchmark", plugins.BENCHMARKS, None, source, where)
    tok = _resolve_section(
        config, "tokenizer", plugins.VISUAL_TOKENIZERS, bench.default_tokenizer, source, where
    )
    _resolve_section(
        config,
        "text_tokenizer",
        plugins.TEXT_TOKENIZERS,
        bench.default_text_tokenizer,
        source,
        where,
    )
    for task in config.sample.tasks:
        try:
            plugins.TASKS.get(task)
        except plugins.PluginError as exc:
            raise SpecError(f"{source}: {here}{exc}") from None
        if task not in bench.tasks:
            raise SpecError(
                f"{source}: {here}sample.tasks: expected tasks benchmark {config.benchmark.name!r} has "
                f"suites for ({', '.join(bench.tasks)}), got {task!r}."
            )
    options: dict[str, dict[str, Any]] = {}
    for name in config.score.which:
        try:
            scorer = plugins.SCORERS.get(name)
        except plugins.PluginError as exc:
            raise SpecError(f"{source}: {here}{exc}") from None
        if scorer.benchmarks is not None and config.benchmark.name not in scorer.benchmarks:
            raise SpecError(
                f"{source}: {here}score.which: scorer {name!r} applies to benchmark(s) "
                f"{', '.join(scorer.benchmarks)}, not {config.benchmark.name!r}."
            )
        bad = [t for t in config.sample.tasks if scorer.tasks is not None and t not in scorer.tasks]
        if bad:
            raise SpecError(
                f"{source}: {here}score.which: scorer {name!r} applies to task(s) "
                f"{', '.join(scorer.tasks)}, but sample.tasks has {', '.join(bad)}."
            )
        options[name] = validate_model(
            scorer.Options,
            config.score.options.get(name, {}),
            source,
            where,
            section=("score", "options", name),
        ).model_dump(mode="json")
    unknown = sorted(set(config.score.options) - set(config.score.which))
    if unknown:
        raise SpecError(
            f"{source}: {here}score.options.{unknown[0]}: expected options only for scorers in "
            f"score.which ({', '.join(config.score.which)}), got {unknown[0]!r}."
        )
    config.score.options = {k: v for k, v in options.items() if v}
    lacking: dict[str, list[str]] = {}  # what is missing -> the scorers that need it
    for name in config.score.which:
        scorer = plugins.SCORERS.get(name)
        for line in scorer.check(scorer.Options.model_validate(options[name]), config):
            lacking.setdefault(line, []).append(name)
    if lacking:  # one error for every scorer's missing weights, before any compute
        raise SpecError(
            f"{source}: {here}score.which: expected every scorer's files in place; missing "
            f"{len(lacking)}: "
            + "; ".join(f"{line} [{', '.join(names)}]" for line, names in lacking.items())
            + "."
        )
    problem = bench.check_run(bench.Options.model_validate(config.benchmark.options()), config)
    vocab = tok.vocab_size(tok.Options.model_validate(config.tokenizer.options()))
    head = config.model.overrides.get("visual_vocab_size")
    if config.model.init_format == "release":  # the released head's K, from transformer/config.json
        from ursa.release import read_transformer_config

        try:
            released = read_transformer_config(config.model.init_from).visual_vocab_size
        except ValueError as exc:
            raise SpecError(f"{source}: {here}model.init_from: {exc}.") from None
        if problem is None and vocab is not None and released != vocab:
            problem = (
                f"the released model's K (lm_head_size {released} in {config.model.init_from}/transformer/"
                f"config.json) to equal the tokenizer's K ({vocab}, from tokenizer {config.tokenizer.name!r})"
            )
    if problem is None and vocab is not None and head is not None and head != vocab:
        problem = (
            f"model.overrides.visual_vocab_size ({head!r}) to equal the tokenizer's K ({vocab}, from "
            f"tokenizer {config.tokenizer.name!r})"
        )
    if problem:
        raise SpecError(f"{source}: {where or '<run config>'}: expected {problem}.")
    return config
