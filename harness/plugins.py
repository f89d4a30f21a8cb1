"""Plug-in points: benchmarks, visual and text tokenizers, scorers, generation tasks, executors.

Each kind of component has a `Registry`; a component registers under a name with a decorator
and declares its typed options as a pydantic model (`Options`), so a spec section such as
`benchmark: {name: shapes, train_size: 512}` is validated by the named component with the same
one-paragraph errors as the rest of the spec. Components come from three places:
- the harness itself (generation tasks, executors, the local Hugging Face text tokenizer);
- installed packages, through the entry-point group `ursa_bench.plugins`: each entry point
  names a module that registers its components when imported (the embedded shapes benchmark
  registers this way, from this project's own pyproject.toml);
- modules a spec names under `plugins:` (imported before the spec is validated).

The harness never names a particular benchmark, tokenizer, scorer or probability path:
everything it knows about one comes through the interfaces below (a path: ursa.path_config.PathConfig).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from ursa import path_config

if TYPE_CHECKING:
    import torch

ENTRY_POINT_GROUP = "ursa_bench.plugins"
T = TypeVar("T")


class PluginError(ValueError):
    """A component is unknown, misdeclared or failed to load; the message says which and why."""


class BadClip(ValueError):
    """One training item of a streaming benchmark cannot be used; the message is the reason
    (recorded in skipped.jsonl by harness.token_shards, never raised to the user)."""


@dataclass(frozen=True)
class ClipItem:
    """One training clip of a streaming benchmark before decoding: a stable key (its path) and caption."""

    key: str
    caption: str


class NoOptions(BaseModel):
    """Options of a component that has none."""

    model_config = ConfigDict(extra="forbid")


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """Named components of one kind. `register(name)` is a decorator; `get(name)` looks one up."""

    def __init__(self, kind: str, key: str, items: dict[str, T] | None = None) -> None:
        self.kind = kind  # "benchmark", "scorer", ...
        self.key = key  # the spec key that names one ("benchmark.name", "score.which", ...)
        self._items: dict[str, T] = (
            {} if items is None else items
        )  # shared with ursa's own registry

    def register(self, name: str) -> Callable[[T], T]:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise PluginError(
                f"{self.kind} name: expected a non-empty string without spaces, got {name!r}"
            )

        def add(item: T) -> T:
            old = self._items.get(name)
            if old is not None and _qualname(old) != _qualname(item):
                raise PluginError(
                    f"{self.kind} {name!r}: already registered by {_qualname(old)}; "
                    f"{_qualname(item)} cannot take the name"
                )
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise PluginError(
                f"{self.key}: expected a registered {self.kind} ({known}), got {name!r}."
                f"{did_you_mean(name, self._items)} Third-party {self.kind}s register through "
                f"the '{ENTRY_POINT_GROUP}' entry point or a spec's 'plugins:' list "
                f"(python -m harness plugins lists what is registered)."
            )
        return self._items[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


BUILTIN_MODULES = (
    "harness.tasks",
    "harness.executors.inprocess",
    "harness.executors.local",
    "harness.executors.slurm",
    "harness.text",
)


@functools.cache
def load_plugins() -> None:
    """Import the harness's own components and every module of the `ursa_bench.plugins`
    entry-point group, once per process."""
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plug-in must name itself, not crash the CLI
            raise PluginError(
                f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r}: failed to "
                f"import: {type(exc).__name__}: {exc}"
            ) from None


def import_modules(modules: Sequence[str], where: str = "plugins") -> None:
    """Import the modules a spec names under `plugins:` (each registers its components)."""
    for i, name in enumerate(modules):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported as a spec error
            raise PluginError(
                f"{where}[{i}]: expected an importable module that registers components, got "
                f"{name!r} ({type(exc).__name__}: {exc})"
            ) from None


# ----------------------------------------------------------------------------- interfaces


class Prompt(Protocol):
    """What the harness reads of an evaluation prompt (a benchmark may carry more)."""

    caption: str
    task: str
    condition_frames: tuple[
        int, ...
    ]  # frame indices given to the sampler (i2v, interpolation, ...)


class Component:
    """Base of every registered class: typed `Options` and a `describe()` line for `plugins`."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class Benchmark(Component, ABC):
    """Training data, evaluation prompt suites and reference generators of one data world.

    `tasks` are the generation tasks it has suites for; `references` the reference generators
    (floors and ceilings) it can produce; `default_tokenizer` / `default_text_tokenizer` name
    the components used when a spec leaves `tokenizer.name` / `text_tokenizer.name` unset."""

    tasks: ClassVar[tuple[str, ...]] = ("t2v",)
    references: ClassVar[tuple[str, ...]] = ()
    default_tokenizer: ClassVar[str | None] = None
    default_text_tokenizer: ClassVar[str | None] = None
    # True: training data is too large for memory; harness.token_shards writes `training_clips()` into
    # token shards once and training streams them (ursa.shards). False: `training_set()` in memory.
    streams: ClassVar[bool] = False
    # True (with streams): the training clips are ids tokenised elsewhere (`load_tokens`), read and
    # range-checked by harness.token_shards, never decoded or encoded (e.g. token_folder).
    pretokenized: ClassVar[bool] = False

    def __init__(self, options: BaseModel, cache_dir: Path) -> None:
        self.options = options
        self.cache_dir = Path(cache_dir)

    @classmethod
    def check_run(cls, options: BaseModel, config: Any) -> str | None:
        """A problem of the whole run config that only this benchmark can see ("expected ..."), or None."""
        return None

    # frames per second of the clips (None: not known); exports write it and motion metrics read it
    fps: ClassVar[float | None] = None

    @classmethod
    def fps_of(cls, options: BaseModel) -> float | None:
        """Frames per second of the clips given the options (default: the class's `fps`), or None
        when unknown: exported videos carry it, and VBench's motion dimensions depend on it."""
        return cls.fps

    @classmethod
    def describe_data(cls, options: BaseModel) -> str | None:
        """One line on the data the options name (e.g. a folder's usable and skipped items),
        found in bounded time without decoding, for `validate`; None when there is nothing to say."""
        return None

    @classmethod
    def geometry_of(cls, options: BaseModel) -> tuple[int, int, int] | None:
        """(F, H, W) of a clip when the options alone fix it, else None (known only once built):
        lets a scorer's `check` see the frame size before any compute."""
        return None

    @abstractmethod
    def fingerprint(self) -> str:
        """A short stable hash of everything that determines the data (enters run ids)."""

    @abstractmethod
    def geometry(self) -> tuple[int, int, int]:
        """(F, H, W) pixels of a training / t2v clip."""

    @abstractmethod
    def training_set(self) -> tuple[list[str], torch.Tensor]:
        """(captions, videos uint8 (N, F, H, W, 3)) of the training split, deterministic."""

    @abstractmethod
    def suite(self, task: str) -> list[Prompt]:
        """The prompts `task` is sampled and scored on, deterministic."""

    @abstractmethod
    def real_videos(self, prompts: list[Prompt]) -> torch.Tensor:
        """uint8 (N, F, H, W, 3): the real clips of `prompts` (condition frames come from them)."""

    def generate_reference(
        self, name: str, prompts: list[Prompt], tokenizer: Any, seed: int
    ) -> torch.Tensor:
        """uint8 (N, F, H, W, 3) clips of reference generator `name` (one of `references`)."""
        raise NotImplementedError(f"{type(self).__name__} has no reference generators")

    def eval_skipped(self) -> list[dict[str, str]]:
        """Held-out items left out of every suite (an unreadable clip, say), as {"key", "reason"}
        rows: recorded in each run's result and shown in its report. Default: none."""
        return []

    def training_clips(self) -> tuple[list[ClipItem], list[dict[str, str]]]:
        """Streaming benchmarks: (the training items in a fixed order, the items already known to be
        unusable as {"key", "reason"} rows)."""
        raise NotImplementedError(f"{type(self).__name__} does not stream (streams = False)")

    def load_clip(self, item: ClipItem) -> torch.Tensor:
        """Streaming benchmarks: uint8 (F, H, W, 3) of one item, or BadClip(reason); safe to call from threads."""
        raise NotImplementedError(f"{type(self).__name__} does not stream (streams = False)")

    def load_tokens(self, items: list[ClipItem]) -> torch.Tensor:
        """Pretokenized benchmarks: the stored ids long (n, T, h, w) of `items`."""
        raise NotImplementedError(
            f"{type(self).__name__} is not pretokenized (pretokenized = False)"
        )

    def real_ids(self, prompts: list[Prompt], tokenizer: Any) -> torch.Tensor:
        """long (N, T, h, w): the ids of `prompts`' real clips, the frames conditioned tasks are given
        and held-out losses are measured on. Default: `tokenizer` encodes `real_videos`; a benchmark
        that stores ids returns them as stored."""
        return tokenizer.encode(self.real_videos(prompts))

    def condition_ids(
        self, prompts: list[Prompt], tokenizer: Any, frames: Sequence[int]
    ) -> torch.Tensor:
        """long (N, k, h, w): the ids of pixel frames `frames` (in order) of `prompts`' real clips,
        encoded on their own as a clip of len(frames) frames: what conditioned tasks are given.
        Never cut from the whole clip's ids, whose encoder may mix frames (Cosmos-3D's temporal
        attention): a condition must not see the frames a task generates. Default:
        `tokenizer.encode` of those frames (a one-frame video for an image, as the authors'
        URSAPipeline.encode_image); a benchmark that stores ids encoded elsewhere overrides it."""
        return tokenizer.encode(self.real_videos(prompts)[:, list(frames)].contiguous())


class VisualTokenizerPlugin(Component, ABC):
    """Builds an `ursa.tokenizers.base.VisualTokenizer` (fitted on the benchmark if it needs to be)."""

    @classmethod
    def vocab_size(cls, options: BaseModel) -> int | None:
        """K known from the options alone (checked against model.overrides before any compute), or None."""
        return None

    @classmethod
    @abstractmethod
    def build(cls, options: BaseModel, benchmark: Benchmark, cache_dir: Path) -> Any:
        """The tokenizer (a VisualTokenizer: encode, decode, codebook_embeddings, fingerprint)."""


class TextTokenizerPlugin(Component, ABC):
    """Builds an `ursa.tokenizers.text.TextTokenizer` (captions -> ids, mask) with `vocab_size`."""

    @classmethod
    @abstractmethod
    def build(cls, options: BaseModel, benchmark: Benchmark, cache_dir: Path) -> Any:
        """The tokenizer; it must have `vocab_size` and `__call__(captions) -> (ids, mask)`."""

    @classmethod
    def fingerprint(cls, tokenizer: Any) -> str:
        return str(getattr(tokenizer, "fingerprint", lambda: type(tokenizer).__qualname__)())


@dataclass(frozen=True)
class Metric:
    """One metric a scorer reports: its range and which way is better (used by checks and reports)."""

    name: str
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool = True

    def matches(self, name: str) -> bool:
        """`name` is this metric, or a qualified value of it (`<name>@<qualifier>`, e.g. `denoise_ce@t=0.05`)."""
        return name == self.name or name.startswith(self.name + "@")


class Scorer(Component, ABC):
    """Scores decoded samples of one task. `metrics` declares every name `score` may return;
    `benchmarks` / `tasks` restrict where it applies (None = everywhere)."""

    metrics: ClassVar[tuple[Metric, ...]] = ()
    benchmarks: ClassVar[tuple[str, ...] | None] = None
    tasks: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, options: BaseModel, benchmark: Benchmark, cache_dir: Path) -> None:
        self.options = options
        self.benchmark = benchmark
        self.cache_dir = Path(cache_dir)

    @abstractmethod
    def score(
        self, videos: torch.Tensor, prompts: list[Prompt], task: str, seed: int
    ) -> dict[str, float]:
        """videos uint8 (N, F, H, W, 3), clip n generated for prompts[n] -> {metric name: value}."""

    def evaluate(
        self, videos: torch.Tensor, prompts: list[Prompt], task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        """(metrics, per-clip values {metric: N floats}). Per-clip values let reports bootstrap over
        prompts as well as seeds; a scorer that has them overrides this, the default has none."""
        return self.score(videos, prompts, task, seed), {}

    @classmethod
    def check(cls, options: BaseModel, config: Any) -> list[str]:
        """What this scorer lacks to score run `config` (a missing weights file: where it is expected
        and how to obtain it), one line each; [] when it can run. Spec validation calls it before any
        compute and merges the lines of every scorer of a run into one error (duplicates once)."""
        return []

    @classmethod
    def derive(cls, metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
        """Aggregates of one run's metrics of one task (bare names, e.g. a benchmark's total over the
        dimensions its scorers reported) and notes for the report; ({}, []) when there are none.
        Reports call it once per distinct implementation (see `derived_metrics`)."""
        return {}, []


# A generation task: (context, prompts) -> ids long (B, T, h, w). See harness/tasks.py.
Task = Callable[..., "torch.Tensor"]

BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", "benchmark.name")
VISUAL_TOKENIZERS: Registry[type[VisualTokenizerPlugin]] = Registry(
    "visual tokenizer", "tokenizer.name"
)
TEXT_TOKENIZERS: Registry[type[TextTokenizerPlugin]] = Registry(
    "text tokenizer", "text_tokenizer.name"
)
SCORERS: Registry[type[Scorer]] = Registry("scorer", "score.which")
TASKS: Registry[Task] = Registry("generation task", "sample.tasks")
EXECUTORS: Registry[Callable[..., Any]] = Registry("executor", "executor.kind")
# probability paths: ursa's registry (ursa.path_config.register_path; a path's config class, `build` makes the path)
PATHS: Registry[type[path_config.PathConfig]] = Registry(
    "probability path", "path.kind", path_config.PATHS
)
REGISTRIES = (BENCHMARKS, VISUAL_TOKENIZERS, TEXT_TOKENIZERS, SCORERS, TASKS, EXECUTORS, PATHS)

# Metrics the harness itself reports besides the scorers': the final training loss and the
# held-out denoising cross-entropy (mean over noise levels, and `denoise_ce@t=<t>` per level).
BUILTIN_METRICS = (
    Metric("train_loss", 0.0, float("inf"), higher_is_better=False),
    Metric("denoise_ce", 0.0, float("inf"), higher_is_better=False),
)


def metric_info(name: str) -> Metric | None:
    """The declaration of a result column: `<metric>` or `<task>.<metric>`, from any registered scorer."""
    head, _, rest = name.partition(".")
    bare = rest if rest and head in TASKS else name
    for metric in BUILTIN_METRICS:
        if metric.matches(bare):
            return metric
    for scorer_name in SCORERS.names():
        for metric in SCORERS.get(scorer_name).metrics:
            if metric.matches(bare):
                return metric
    return None


def derived_metrics(metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Every registered scorer's `derive` on one run's metrics, per task (`<task>.` prefixes kept):
    (derived metrics, report notes). Scorers of one family (one per VBench dimension) derive the
    same values: they merge, and their notes appear once."""
    by_task: dict[str, dict[str, float]] = {}
    for name, value in metrics.items():
        head, _, rest = name.partition(".")
        task, bare = (head, rest) if rest and head in TASKS else ("", name)
        by_task.setdefault(task, {})[bare] = value
    out: dict[str, float] = {}
    notes: list[str] = []
    for task, values in by_task.items():
        prefix = f"{task}." if task else ""
        for name in SCORERS.names():
            derived, lines = SCORERS.get(name).derive(values)
            out.update({prefix + k: v for k, v in derived.items()})
            notes += [f"{task}: {line}" if task else line for line in lines]
    return out, list(dict.fromkeys(notes))


def _options_lines(options: type[BaseModel]) -> list[str]:
    lines = []
    for name, f in options.model_fields.items():
        default = (
            "required"
            if f.is_required()
            else (f"default {f.get_default(call_default_factory=True)!r}")
        )
        ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        doc = f" - {f.description}" if f.description else ""
        lines.append(f"      {name}: {ann} ({default}){doc}")
    return lines


def describe_registries(registries: Sequence[Registry]) -> str:
    """What `python -m harness plugins` prints: each registered component, its origin and options."""
    out = []
    for reg in registries:
        out.append(f"{reg.kind}s ({reg.key}):")
        for name in reg.names():
            item = reg.get(name)
            doc = (
                item.describe()
                if isinstance(item, type) and issubclass(item, Component)
                else ((item.__doc__ or "").strip().splitlines()[0] if item.__doc__ else "")
            )
            out.append(f"  {name}  [{getattr(item, '__module__', '?')}]  {doc}".rstrip())
            if isinstance(item, type) and issubclass(item, Component):
                extra = []
                if issubclass(item, Benchmark):
                    extra.append(
                        f"      tasks: {', '.join(item.tasks)}; references: {', '.join(item.references) or 'none'}"
                    )
                if issubclass(item, Scorer):
                    extra.append(
                        "      metrics: "
                        + ", ".join(
                            f"{m.name} [{m.low:g}, {m.high:g}] {'higher' if m.higher_is_better else 'lower'} is better"
                            for m in item.metrics
                        )
                    )
                out += extra + _options_lines(item.Options)
            elif isinstance(item, type) and issubclass(item, BaseModel):  # a path config: its keys
                out += _options_lines(item)
        out.append("")
    return "\n".join(out).rstrip()
