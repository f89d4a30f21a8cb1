"""Ablation specs: the schema of a run config and of a spec, with errors a human can act on.

A spec declares one fully described run (`base`), the axes that vary (`grid`, `zip`, `seeds`,
`search`), how to dispatch (`executor`), what to report (`report`) and size `profiles`
(smoke / default / full) given as dotted-key overrides. Reading YAML files (`include:`,
`plugins:`) is harness/specfile.py; expanding axes is harness/expand.py.

Each setting is declared once: `train:` is `ursa.train.TrainConfig` itself and `sample:` extends
`ursa.sample.SamplerConfig`, so the spec validator and the code that consumes a setting share
one schema. `benchmark:`, `tokenizer:` and `text_tokenizer:` are plug-in sections: `name` picks a
registered component (harness/plugins.py) and every other key is one of that component's typed
options, validated by `resolve_run`. Every problem raises `SpecError` (a ValueError) naming the
file, the dotted key path, what was expected and what was got, before any compute.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import plugins
from ursa.sample import SamplerConfig
from ursa.train import TrainConfig

PROFILES = ("smoke", "default", "full")


class SpecError(ValueError):
    """A spec is malformed; the message names file, key path, expectation and actual value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Section(BaseModel):
    """A plug-in section: `name` picks a registered component, the other keys are its options."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(_Strict):
    preset: Literal["tiny", "small", "base", "0.6B", "1.7B"] = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)
    init_from: str | None = None  # a saved URSAModel directory; with train.steps 0 the run only evaluates it

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


class SampleConfig(SamplerConfig):
    """`ursa.sample.SamplerConfig` plus the evaluation protocol: which tasks, batch, long-video context."""

    batch_size: int = Field(16, ge=1)
    tasks: list[str] = Field(default_factory=lambda: ["t2v"], min_length=1)  # registered generation tasks
    context_frames: int = Field(1, ge=1)  # latent frames carried between long-video windows
    seed: int = 0  # set from the spec's `seeds` axis

    def sampler_config(self) -> SamplerConfig:
        """The part ursa's sampler consumes (every SamplerConfig field, nothing else)."""
        return SamplerConfig(**self.model_dump(include=set(SamplerConfig.model_fields)))


class ScoreConfig(_Strict):
    which: list[str] = Field(min_length=1)  # registered scorers
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # scorer name -> its options
    denoising_bins: int = Field(0, ge=0, le=100)  # held-out cross-entropy at this many noise levels (0: off)
    seed: int = 0


class RunConfig(_Strict):
    """One fully described run (plug-in sections resolved by `resolve_run`)."""

    benchmark: Section
    tokenizer: Section = Field(default_factory=Section)
    text_tokenizer: Section = Field(default_factory=Section)
    model: ModelConfig = Field(default_factory=ModelConfig)
    path: PathConfig = Field(default_factory=PathConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    score: ScoreConfig

    @model_validator(mode="after")
    def _combinations(self) -> RunConfig:
        pinned = self.model.overrides.get("mask_token")
        if pinned is not None and bool(pinned) != (self.path.kind == "masked"):
            raise ValueError(f"model.overrides.mask_token={pinned!r} contradicts path.kind={self.path.kind!r} "
                             "(the mask token exists exactly for the masked path; leave it unset)")
        if self.train.steps == 0 and not self.model.init_from:
            raise ValueError("train.steps 0 (evaluation only) to come with model.init_from (the model to evaluate)")
        if len(set(self.sample.tasks)) != len(self.sample.tasks):
            raise ValueError(f"sample.tasks without duplicates, got {self.sample.tasks}")
        return self

    @property
    def evaluation_only(self) -> bool:
        """No training stage: the run samples and scores `model.init_from` as it is."""
        return self.train.steps == 0 and self.model.init_from is not None


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
    kind: str = "local"  # a registered executor: inprocess, local, slurm (harness/dispatch.py)
    max_parallel: int = Field(2, ge=1)
    timeout_min: float = Field(60, gt=0)
    threads: int = Field(0, ge=0)  # torch threads per run; 0 = cores // max_parallel
    max_requeue: int = Field(3, ge=0)  # timeouts / preemptions a run may resume from (local and slurm)
    folder: str | None = None  # submitit job folder, relative to the runs root (default <spec>/<profile>/_submitit)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        plugins.EXECUTORS.get(kind)  # PluginError (a ValueError) names the registered ones
        return kind


class ReportConfig(_Strict):
    headline: str | None = None  # the metric the verdict is about (e.g. alignment)
    baseline: str | None = None  # the arm every other arm is paired against (default: the first arm)
    metrics: list[str] = Field(default_factory=list)
    x: str | None = None
    plots: list[Literal["metric_vs_param", "optimization_history", "contour", "linearity",
                        "loss_curves", "frame_strips", "learning_curves", "denoising"]] = Field(
        default_factory=lambda: ["loss_curves", "frame_strips", "learning_curves", "denoising"])
    paper: dict[str, dict[str, float]] = Field(default_factory=dict)


class Spec(_Strict):
    """A validated ablation spec; `source` is the YAML file it came from."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    plugins: list[str] = Field(default_factory=list)  # modules to import first (they register components)
    base: RunConfig
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




# ----------------------------------------------------------------------------- errors

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


def format_error(source: str, prefix: str, err: ValidationError, model: type[BaseModel],
                 section: tuple[str, ...] = ()) -> SpecError:
    """Turn the first pydantic error into one paragraph: file, dotted key, expected, got.

    `section`: the key path of `model` inside the run config (a plug-in's options live under
    e.g. ("benchmark",)), prepended to the error's location."""
    e = err.errors()[0]
    loc = tuple(p for p in e["loc"] if p not in ("function-after",))
    if section:
        hint_model, hint_loc = model, loc
        loc = section + loc
    else:
        hint_model, hint_loc = model, loc
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    path = f"{prefix} (run-config key {dotted})" if prefix and dotted else prefix or dotted
    if e["type"] == "extra_forbidden":
        fields = _fields_at(hint_model, hint_loc[:-1])
        hint = _suggest(str(loc[-1]), fields)
        return SpecError(f"{source}: unknown key {path!r}.{hint} Expected one of: {', '.join(fields)}.")
    if e["type"] == "missing":
        return SpecError(f"{source}: {path or '<top level>'}: required key is missing.")
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    msg = f"a value {msg}" if msg.startswith(("greater", "less")) else msg
    more = f" ({len(err.errors()) - 1} more problem(s) after this one)" if len(err.errors()) > 1 else ""
    got = "" if isinstance(e.get("input"), dict) and e["type"] == "value_error" else f"; got {_short(e.get('input'))}"
    return SpecError(f"{source}: {path or '<top level>'}: expected {msg}{got}.{more}")


# ----------------------------------------------------------------------------- plug-in sections

def _resolve_section(config: RunConfig, key: str, registry: plugins.Registry, default: str | None,
                     source: str, where: str) -> type[plugins.Component]:
    """Look up the component a section names and replace its options by the validated, defaulted
    ones (so an option left at its default and one spelled out give the same run id)."""
    section: Section = getattr(config, key)
    name = section.name or default
    if name is None:
        raise SpecError(f"{source}: {where or key}: {key}.name: expected the name of a registered "
                        f"{registry.kind} ({', '.join(registry.names()) or 'none'}), got none.")
    try:
        component = registry.get(name)
    except plugins.PluginError as exc:
        raise SpecError(f"{source}: {where + ': ' if where else ''}{exc}") from None
    try:
        options = component.Options.model_validate(section.options())
    except ValidationError as err:
        raise format_error(source, where, err, component.Options, section=(key,)) from None
    setattr(config, key, Section(name=name, **options.model_dump(mode="json")))
    return component


def resolve_run(data: dict[str, Any], source: str = "<memory>", where: str = "") -> RunConfig:
    """Validate one run config: schema, then every plug-in it names (registered, options valid,
    applicable to the benchmark and tasks), then checks across sections. Raises SpecError."""
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise format_error(source, where, err, RunConfig) from None
    here = f"{where}: " if where else ""
    bench = _resolve_section(config, "benchmark", plugins.BENCHMARKS, None, source, where)
    tok = _resolve_section(config, "tokenizer", plugins.VISUAL_TOKENIZERS, bench.default_tokenizer, source, where)
    _resolve_section(config, "text_tokenizer", plugins.TEXT_TOKENIZERS, bench.default_text_tokenizer, source, where)
    for task in config.sample.tasks:
        try:
            plugins.TASKS.get(task)
        except plugins.PluginError as exc:
            raise SpecError(f"{source}: {here}{exc}") from None
        if task not in bench.tasks:
            raise SpecError(f"{source}: {here}sample.tasks: expected tasks benchmark {config.benchmark.name!r} has "
                            f"suites for ({', '.join(bench.tasks)}), got {task!r}.")
    options: dict[str, dict[str, Any]] = {}
    for name in config.score.which:
        try:
            scorer = plugins.SCORERS.get(name)
        except plugins.PluginError as exc:
            raise SpecError(f"{source}: {here}{exc}") from None
        if scorer.benchmarks is not None and config.benchmark.name not in scorer.benchmarks:
            raise SpecError(f"{source}: {here}score.which: scorer {name!r} applies to benchmark(s) "
                            f"{', '.join(scorer.benchmarks)}, not {config.benchmark.name!r}.")
        bad = [t for t in config.sample.tasks if scorer.tasks is not None and t not in scorer.tasks]
        if bad:
            raise SpecError(f"{source}: {here}score.which: scorer {name!r} applies to task(s) "
                            f"{', '.join(scorer.tasks)}, but sample.tasks has {', '.join(bad)}.")
        try:
            options[name] = scorer.Options.model_validate(config.score.options.get(name, {})).model_dump(mode="json")
        except ValidationError as err:
            raise format_error(source, where, err, scorer.Options, section=("score", "options", name)) from None
    unknown = sorted(set(config.score.options) - set(config.score.which))
    if unknown:
        raise SpecError(f"{source}: {here}score.options.{unknown[0]}: expected options only for scorers in "
                        f"score.which ({', '.join(config.score.which)}), got {unknown[0]!r}.")
    config.score.options = {k: v for k, v in options.items() if v}
    problem = bench.check_run(bench.Options.model_validate(config.benchmark.options()), config)
    vocab = tok.vocab_size(tok.Options.model_validate(config.tokenizer.options()))
    head = config.model.overrides.get("visual_vocab_size")
    if problem is None and vocab is not None and head is not None and head != vocab:
        problem = (f"model.overrides.visual_vocab_size ({head!r}) to equal the tokenizer's K ({vocab}, from "
                   f"tokenizer {config.tokenizer.name!r})")
    if problem:
        raise SpecError(f"{source}: {where or '<run config>'}: expected {problem}.")
    return config
