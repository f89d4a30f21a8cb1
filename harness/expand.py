"""Spec -> resolved runs: profiles, grid (cartesian), zip (axes moving together) and seeds.

Dotted keys address the run config (`train.shift`, `path.kind`, `model.overrides.hidden_size`).
A profile (smoke / default / full) overrides run-config keys and may also set `seeds`,
`grid.<key>` (an axis' values), `search.<field>` or `executor.<field>`.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.spec import PROFILES, RunConfig, Section, Spec, SpecError, _suggest, format_error, resolve_run

SPEC_LEVEL = ("seeds", "grid", "search", "executor")


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


def _is_open(model: type[BaseModel], name: str) -> bool:
    """Keys below an open mapping or a plug-in section are checked when the run is resolved."""
    ann = model.model_fields[name].annotation
    return getattr(ann, "__origin__", None) is dict or ann is Section


def check_key(key: str, where: str, source: str) -> None:
    """Raise SpecError unless `key` is a dotted path into RunConfig."""
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            prefix = ".".join(parts[:i])
            options = [f"{prefix}.{f}" if prefix else f for f in model.model_fields]
            raise SpecError(f"{source}: {where}: unknown run-config key {key!r}.{_suggest('.'.join(parts[:i + 1]), options)} "
                            f"Expected a dotted key such as {', '.join(options[:4])}.")
        if _is_open(model, part):  # plug-in options / overrides: validated with the whole run
            return
        ann = model.model_fields[part].annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            if i != len(parts) - 1:
                raise SpecError(f"{source}: {where}: key {key!r} goes below {'.'.join(parts[:i + 1])!r}, which is a "
                                f"value, not a section.")
            return
        model = ann
    raise SpecError(f"{source}: {where}: key {key!r} names a whole section; expected a single value's dotted key.")


def set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise SpecError(f"cannot set {key!r}: {p!r} is not a section")
    d[parts[-1]] = copy.deepcopy(value)


def _validate_run(cfg: dict, source: str, where: str) -> RunConfig:
    return resolve_run(cfg, source, where)


def check_axes(spec: Spec) -> None:
    """Check every grid / zip / profile / search key and each axis value against the base config."""
    base = spec.base.model_dump()
    _validate_run(_resolve(copy.deepcopy(base)), spec.source, "base")
    axes = [(f"grid.{k}", k, v) for k, v in spec.grid.items()]
    axes += [(f"zip[{i}].{k}", k, v) for i, g in enumerate(spec.zip) for k, v in g.items()]
    seen: set[str] = set()
    for where, key, values in axes:
        check_key(key, where, spec.source)
        if key in seen:
            raise SpecError(f"{spec.source}: {where}: key {key!r} appears on more than one axis; expected each key once.")
        seen.add(key)
        for j, value in enumerate(values):
            cfg = copy.deepcopy(base)
            set_dotted(cfg, key, value)
            _validate_run(_resolve(cfg), spec.source, f"{where}[{j}]")
    if spec.search:
        for key in spec.search.params:
            check_key(key, f"search.params.{key}", spec.source)
            if key in seen:
                raise SpecError(f"{spec.source}: search.params.{key}: also a grid/zip axis; expected each key once.")
        for j, point in enumerate(spec.search.enqueue):
            for key in point:
                if key not in spec.search.params:
                    raise SpecError(f"{spec.source}: search.enqueue[{j}].{key}: expected one of the search params "
                                    f"{sorted(spec.search.params)}, got {key!r}.")
    for profile in spec.profiles:
        apply_profile(spec, profile)


def apply_profile(spec: Spec, profile: str) -> tuple[Spec, dict]:
    """Return (spec with spec-level overrides applied, base run-config dict with run-level ones)."""
    if profile not in PROFILES:
        raise SpecError(f"{spec.source}: --profile: expected one of {', '.join(PROFILES)}, got {profile!r}.")
    overrides = spec.profiles.get(profile, {})
    data = spec.model_dump()
    base = data.pop("base")
    for key, value in overrides.items():
        where = f"profiles.{profile}.{key}"
        head = key.split(".")[0]
        if head in SPEC_LEVEL:
            if head == "grid":
                axis = key[len("grid."):]
                if axis not in data["grid"]:
                    raise SpecError(f"{spec.source}: {where}: expected an existing grid axis "
                                    f"({', '.join(data['grid']) or 'none'}), got {axis!r}.")
                data["grid"][axis] = value
            elif head == "search" and data["search"] is None:
                raise SpecError(f"{spec.source}: {where}: the spec has no search block to override.")
            else:
                set_dotted(data, key, value)
        else:
            check_key(key, where, spec.source)
            set_dotted(base, key, value)
    try:
        new = Spec.model_validate({**data, "base": base})
    except ValidationError as err:
        raise format_error(spec.source, f"profiles.{profile}", err, Spec) from None
    _validate_run(_resolve(copy.deepcopy(base)), spec.source, f"profiles.{profile}")
    return new, base


def _resolve(cfg: dict) -> dict:
    """Settings implied by others: the masked path needs the mask token in the model."""
    if cfg.get("path", {}).get("kind") == "masked":
        cfg.setdefault("model", {}).setdefault("overrides", {}).setdefault("mask_token", True)
    return cfg


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def make_run(spec: Spec, profile: str, base: dict, params: dict[str, Any], seed: int, arm: str | None = None) -> RunSpec:
    """Build one validated run from a base dict, axis values and a seed."""
    cfg = copy.deepcopy(base)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    set_dotted(cfg, "train.seed", seed)
    set_dotted(cfg, "sample.seed", seed)
    run = _validate_run(_resolve(cfg), spec.source, f"run {params}")
    arm = arm if arm is not None else (", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "base")
    return RunSpec(spec=spec.name, profile=profile, arm=arm, seed=seed, params=dict(params), config=run)


def expand(spec: Spec, profile: str = "default") -> list[RunSpec]:
    """All grid x zip x seed runs of `spec` under `profile` (search trials are made by the search)."""
    spec, base = apply_profile(spec, profile)
    grid_axes = [[(k, v) for v in values] for k, values in spec.grid.items()]
    zip_axes = [[tuple(zip(g.keys(), vals)) for vals in zip(*g.values())] for g in spec.zip]
    runs = []
    for grid_point in itertools.product(*grid_axes):
        for zip_point in itertools.product(*zip_axes):
            params = dict(grid_point)
            for group in zip_point:
                params.update(group)
            runs += [make_run(spec, profile, base, params, seed) for seed in spec.seeds]
    return runs
