"""The `path:` section of a spec: one config per probability path (ursa.paths), registered by its
`kind` in `PATHS` (`register_path`), with `build(vocab_size, embeddings)`.
`PathConfig.model_validate` dispatches on `kind`, so a key another kind uses is an unknown key.
A new path is a plug-in: a ProbPath subclass and a registered PathConfig subclass.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from ursa.calibration import calibrate_metric_path
from ursa.paths import MaskedPath, MetricPath, MixturePath, ProbPath

C = TypeVar("C", bound="type[PathConfig]")
PATHS: dict[str, type[PathConfig]] = {}  # kind -> its config class (register_path)
DEFAULT_KIND = "metric"  # the path of a spec that names none


def register_path(config: C) -> C:
    """Class decorator: make a PathConfig subclass the config of `path.kind` = its `kind` default."""
    fields: dict[str, Any] = config.__pydantic_fields__  # = model_fields, which mypy mistypes here
    kind = fields["kind"].default
    old = PATHS.get(kind)
    if not isinstance(kind, str) or not kind:
        raise ValueError(
            f"{config.__qualname__}.kind: expected a non-empty string default (the path's name), "
            f"got {kind!r}"
        )
    if old is not None and old.__qualname__ != config.__qualname__:
        raise ValueError(
            f"path kind {kind!r}: already registered by {old.__module__}.{old.__qualname__}"
        )
    PATHS[kind] = config
    return config


class PathConfig(BaseModel):
    """A probability path's settings (the `path:` section). `PathConfig.model_validate(data)` picks
    the registered subclass named by data's `kind` (default "metric") and validates with it, so
    each kind accepts exactly its own keys."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    kind: str = DEFAULT_KIND  # the probability path (docs/math.md); registered kinds: PATHS
    mask_token: ClassVar[bool] = False  # the model needs one more input state: the mask id K

    def __init__(self, **data: Any) -> None:
        if type(self) is PathConfig:  # the base has no build: it only picks a kind's config
            raise TypeError(
                "PathConfig: expected PathConfig.model_validate(data) or a kind's own config class "
                "(e.g. MetricPathConfig(c=2.0)), got PathConfig(...)"
            )
        super().__init__(**data)

    @model_validator(mode="wrap")
    @classmethod
    def _by_kind(cls, data: Any, handler: Any) -> Any:
        if cls is not PathConfig or isinstance(data, PathConfig):
            return handler(data)
        return cls.variant(data).model_validate(data)

    @classmethod
    def variant(cls, data: Any) -> type[PathConfig]:
        """The registered config class of `data`'s kind; a ValidationError at `kind` if none."""
        kind = data.get("kind", DEFAULT_KIND) if isinstance(data, dict) else DEFAULT_KIND
        if isinstance(kind, str) and kind in PATHS:
            return PATHS[kind]
        names = sorted(PATHS)
        expected = (
            ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
            if len(names) > 1
            else repr(names[0])
        )
        raise ValidationError.from_exception_data(
            "PathConfig",
            [
                InitErrorDetails(
                    type="literal_error",
                    loc=("kind",),
                    input=kind,
                    ctx={"expected": f"a registered path: {expected}"},
                )
            ],
        )

    @classmethod
    def variants(cls) -> dict[str, type[PathConfig]]:
        """The registered kinds' config classes, by kind."""
        return dict(sorted(PATHS.items()))

    def fit(self, embeddings: torch.Tensor) -> dict[str, Any]:
        """Settings fitted to the codebook, float (K, D), that replace this config's before `build`
        (the harness stores them with the train stage); {} when the path fits nothing."""
        return {}

    def build(self, vocab_size: int, embeddings: torch.Tensor | None = None) -> ProbPath:
        """The path over ids in [0, vocab_size); embeddings: the codebook, float (K, D)."""
        raise NotImplementedError(f"{type(self).__name__}.build")


@register_path
class MetricPathConfig(PathConfig):
    """URSA's metric path: p_t(x | x1) = softmax(-beta_t d(x, x1)) over the codebook."""

    kind: Literal["metric"] = "metric"
    c: float = Field(3.0, gt=0)  # beta_t = c (t / (1 - t))^alpha, the scale
    alpha: float = Field(0.9, gt=0)  # the exponent of beta_t
    calibrate: bool = False  # fit (c, alpha) so the mean corruption distance falls linearly in t

    def fit(self, embeddings: torch.Tensor) -> dict[str, Any]:
        if not self.calibrate:
            return {}
        c, alpha = map(float, calibrate_metric_path(embeddings))
        return {"c": c, "alpha": alpha}

    def build(self, vocab_size: int, embeddings: torch.Tensor | None = None) -> MetricPath:
        if embeddings is None:
            raise ValueError(
                "embeddings: expected a (vocab_size, D) float tensor for kind='metric', got None"
            )
        path = MetricPath(embeddings, c=self.c, alpha=self.alpha)
        if path.vocab_size != vocab_size:
            raise ValueError(
                f"embeddings: expected {vocab_size} rows (vocab_size), got {path.vocab_size}"
            )
        return path


@register_path
class MixturePathConfig(PathConfig):
    """Uniform-source mixture path: keep x1 w.p. t^exponent, else a uniform id."""

    kind: Literal["mixture"] = "mixture"
    exponent: float = Field(1.0, gt=0)  # kappa_t = t^exponent

    def build(self, vocab_size: int, embeddings: torch.Tensor | None = None) -> MixturePath:
        return MixturePath(vocab_size, self.exponent)


@register_path
class MaskedPathConfig(PathConfig):
    """Absorbing (masked diffusion) path: keep x1 w.p. t^exponent, else the mask id K."""

    kind: Literal["masked"] = "masked"
    exponent: float = Field(1.0, gt=0)  # kappa_t = t^exponent
    mask_token: ClassVar[bool] = True

    def build(self, vocab_size: int, embeddings: torch.Tensor | None = None) -> MaskedPath:
        return MaskedPath(vocab_size, self.exponent)


def build_path(
    kind: str, *, vocab_size: int, embeddings: torch.Tensor | None = None, **settings: Any
) -> ProbPath:
    """The registered path `kind` with `settings` (its config's keys, e.g. c, alpha, exponent) over ids
    in [0, vocab_size); embeddings float (vocab_size, D) for the metric path. ValueError on a bad
    kind or setting."""
    try:
        config = PathConfig.model_validate({"kind": kind, **settings})
    except ValidationError as err:
        e = err.errors()[0]
        expected = e["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        raise ValueError(
            f"{'.'.join(map(str, e['loc']))}: expected {expected}, got {e.get('input')!r}"
        ) from None
    return config.build(vocab_size, embeddings)
