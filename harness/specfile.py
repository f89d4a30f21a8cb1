"""Spec files: YAML with `include:` chains, the `plugins:` modules they import, validation into a Spec.

A spec file may start from others (`include:`, relative paths, cycles detected): base /
executor / report / profiles merge recursively, grid, zip, seeds and search replace. Modules
named under `plugins:` are imported before validation, so the components they register can be
named in the spec. Every problem raises `SpecError` naming the file and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness import plugins
from harness.expand import check_axes
from harness.spec import Spec, SpecError, _short, format_error


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
    modules = data.get("plugins", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise SpecError(f"{source}: plugins: expected a list of module names, got {_short(modules)}.")
    try:
        plugins.load_plugins()
        plugins.import_modules(modules)
    except plugins.PluginError as exc:
        raise SpecError(f"{source}: {exc}") from None
    try:
        spec = Spec.model_validate({**data, "source": source})
    except ValidationError as err:
        raise format_error(source, "", err, Spec) from None
    check_axes(spec)
    return spec


def load_spec(path: str | Path) -> Spec:
    """Load, merge includes, and validate a spec file."""
    p = Path(path).resolve()
    return parse_spec(read_yaml(p), source=str(Path(path)))
