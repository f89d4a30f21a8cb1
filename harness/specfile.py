"""Spec files: YAML with `include:` chains, the `plugins:` modules they import, validation into a Spec.

A spec file may start from others (`include:`, relative paths, cycles detected): base /
executor / report / profiles merge recursively, grid, zip, seeds and search replace. Modules
named under `plugins:` are imported before validation, so the components they register can be
named in the spec. Every problem raises `SpecError` naming the file and key.

Spec files are untrusted input, so reading one is bounded before anything else happens: the
files of one spec (its includes together) hold at most MAX_SPEC_BYTES, an include chain is at
most MAX_INCLUDE_DEPTH files deep (MAX_INCLUDE_FILES files in all), YAML nests at most
MAX_NESTING levels, aliases (`*name`) repeat at most MAX_ALIAS_VALUES values in total (an
alias bomb, "billion laughs", stops there), recursive aliases and duplicate mapping keys (YAML
keeps the last one silently) are errors, and YAML 1.2 floats such as `1e-3` load as floats
(YAML 1.1, PyYAML's default, reads them as strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import plugins
from harness.expand import check_axes
from harness.spec import Spec, SpecError, _short, validate_model

MAX_SPEC_BYTES = 1_000_000  # a spec file and everything it includes, together
MAX_INCLUDE_DEPTH = 32  # files in one include chain (a.yaml -> b.yaml -> ...)
MAX_INCLUDE_FILES = 256  # files read for one spec, includes of includes counted each time
MAX_NESTING = 64  # levels of nested mappings / lists (a spec needs fewer than 10)
MAX_ALIAS_VALUES = 10_000  # YAML values that aliases (*name) may repeat, in total


def _dotted(parts: tuple | list) -> str:
    """A key path as the errors write it (`base.train.lr`, `grid.x[3]`); long paths are shortened."""

    def fmt(ps: tuple | list) -> str:
        return ".".join(
            f"[{p}]"
            if isinstance(p, int)
            else str(p)
            if str(p).isprintable() and len(str(p)) <= 40
            else _short(str(p))
            for p in ps
        ).replace(".[", "[")

    if len(parts) > 8:
        return f"{fmt(parts[:4])}...({len(parts) - 6} levels)...{fmt(parts[-2:])}"
    return fmt(parts) or "<top level>"


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, bounded: nesting depth is checked while composing (the composer recurses
    once per level, so deep input would otherwise end in a RecursionError), and the node graph is
    checked for alias expansion, recursive aliases and duplicate keys before anything is built."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.key_path: list = []  # the key / index of every node being composed, outermost first
        self.anchor_of: dict[
            int, str
        ] = {}  # id(node) -> its anchor name, for nodes an alias repeats

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            self.anchor_of[id(node)] = event.anchor
            return node
        part = (
            index.value
            if isinstance(index, yaml.ScalarNode)
            else index
            if isinstance(index, int)
            else "<key>"
        )
        self.key_path.append(part)
        try:
            if len(self.key_path) > MAX_NESTING:
                mark = self.peek_event().start_mark
                where = [p for p in self.key_path[1:] if p != "<key>"]
                raise SpecError(
                    f"{self.source}: {_dotted(where)}: expected at most {MAX_NESTING} levels of nested "
                    f"mappings and lists, got deeper nesting at line {mark.line + 1}, column "
                    f"{mark.column + 1} (a spec needs a few levels; look for unclosed brackets or "
                    f"generated input)."
                )
            return super().compose_node(parent, index)
        finally:
            self.key_path.pop()

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:  # e.g. more digits than int() converts
            raise SpecError(
                f"{self.source}: line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: "
                f"expected an integer Python can read, got {len(node.value):,} characters of digits "
                f"({str(exc).split(';')[0]})."
            ) from None


# YAML 1.2 floats: `1e-3`, `5E+2`, `.5` load as numbers, as they do in JSON and every YAML 1.2 parser.
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$")
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)


def _check_graph(root: yaml.Node, loader: _SpecLoader, source: str) -> None:
    """Walk the composed node graph as the built data would be walked (aliases expanded), without
    recursion and stopping at the first problem: alias expansion beyond MAX_ALIAS_VALUES, a
    recursive alias, nesting deeper than MAX_NESTING through aliases, a key given twice."""
    seen: set[int] = set()
    visits = 0
    on_path: set[int] = (
        set()
    )  # collections being walked (a recursive alias reaches one of them again)
    # (node, key path, outermost alias on the path as (key path, anchor) or None); None = leave on_path
    stack: list = [(root, (), None)]
    while stack:
        node, path, alias = stack.pop()
        if node is None:  # leaving a collection
            on_path.discard(path)
            continue
        visits += 1
        if id(node) in seen and alias is None:
            alias = (path, loader.anchor_of.get(id(node), "?"))
        seen.add(id(node))
        if visits - len(seen) > MAX_ALIAS_VALUES:
            raise SpecError(
                f"{source}: {_dotted(alias[0])}: expected YAML aliases to repeat at most "
                f"{MAX_ALIAS_VALUES:,} values in the whole spec, got more (alias *{alias[1]} used here "
                f"expands to nested copies of copies: an alias bomb); write the values out or use "
                f"fewer, flatter aliases."
            )
        if isinstance(node, yaml.ScalarNode):
            continue
        if id(node) in on_path:
            raise SpecError(
                f"{source}: {_dotted(path)}: expected data that ends, got a recursive alias "
                f"(*{loader.anchor_of.get(id(node), '?')} is used inside the value it names)."
            )
        if len(path) > MAX_NESTING:
            raise SpecError(
                f"{source}: {_dotted(path)}: expected at most {MAX_NESTING} levels of nested mappings "
                f"and lists, got deeper nesting through aliases (*name)."
            )
        on_path.add(id(node))
        stack.append((None, id(node), None))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(
                (child, (*path, i), alias) for i, child in reversed(list(enumerate(node.value)))
            )
            continue
        lines: dict[tuple[str, str], int] = {}
        children = []
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if (
                    key.tag == "tag:yaml.org,2002:merge"
                ):  # `<<: *base` merges; later keys override it
                    children.append((value, (*path, "<<"), alias))
                    continue
                line = key.start_mark.line + 1
                if (key.tag, key.value) in lines:
                    first = lines[(key.tag, key.value)]
                    at = f"line {line}" if first == line else f"lines {first} and {line}"
                    raise SpecError(
                        f"{source}: {_dotted((*path, key.value))}: expected each key once in a mapping, "
                        f"got {_short(key.value)} twice ({at}); YAML would silently keep only the last "
                        f"one, so delete or merge one of them."
                    )
                lines[(key.tag, key.value)] = line
                children.append((value, (*path, key.value), alias))
            else:
                children.append((key, (*path, "<key>"), alias))
                children.append((value, (*path, "<value>"), alias))
        stack.extend(reversed(children))


MAX_KEY = 200  # characters of one mapping key (keys are names: a dotted run-config key is < 50)


def _check_keys(node: Any, source: str, path: str = "") -> None:
    """YAML allows non-string mapping keys; specs do not. Keys are names: printable, at most MAX_KEY
    characters (every error message quotes them)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise SpecError(
                    f"{source}: {path or '<top level>'}: expected string keys, got key {_short(k)} "
                    f"of type {type(k).__name__}."
                )
            if not k.isprintable() or len(k) > MAX_KEY:
                raise SpecError(
                    f"{source}: {path or '<top level>'}: expected keys that are names (printable, at "
                    f"most {MAX_KEY} characters), got key {_short(k)} ({len(k):,} characters)."
                )
            _check_keys(v, source, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_keys(v, source, f"{path}[{i}]")


def deep_merge(base: dict, top: dict) -> dict:
    """Recursively merge mappings; `top` wins, lists and scalars are replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


@dataclass
class _Budget:
    """What reading one spec (its includes together) has used so far."""

    bytes: int = 0
    files: int = 0


def _chain(files: tuple[Path, ...]) -> str:
    names = [str(p) for p in files]
    return " -> ".join(
        names if len(names) <= 6 else [*names[:3], f"...({len(names) - 5} more)...", *names[-2:]]
    )


def load_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document with the bounds of this module (see the module docstring); SpecError on any problem."""
    loader = None
    try:
        loader = _SpecLoader(text, source)  # the reader rejects control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, loader, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{source}: expected valid YAML, got a parse error: {' '.join(str(exc).split())}"
        ) from None
    except RecursionError:  # not expected with the bounds above; never a traceback
        raise SpecError(
            f"{source}: expected at most {MAX_NESTING} levels of nested mappings and lists, got "
            f"deeper nesting."
        ) from None
    except (
        ValueError
    ) as exc:  # SpecError, or a constructor's (e.g. an integer of more than 4300 digits)
        if isinstance(exc, SpecError):
            raise
        raise SpecError(
            f"{source}: expected valid YAML values, got {' '.join(str(exc).split(';')[0].split())}."
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _read_bounded(path: Path, source: str, budget: _Budget) -> str:
    """The file's text, refusing to read more than what is left of MAX_SPEC_BYTES."""
    left = MAX_SPEC_BYTES - budget.bytes
    try:
        with path.open("rb") as f:
            raw = f.read(left + 1)
    except OSError as exc:
        raise SpecError(
            f"{source}: expected a readable YAML file, got {exc.strerror or exc}."
        ) from None
    budget.bytes += len(raw)
    if len(raw) > left:
        size = path.stat().st_size
        got = f"{size:,} bytes" if size > len(raw) else f"more than {left:,} bytes"
        whole = "" if budget.files <= 1 else " with the files it includes"
        raise SpecError(
            f"{source}: expected a spec of at most {MAX_SPEC_BYTES:,} bytes{whole} (a spec declares "
            f"axes and settings, not data), got {got}; list fewer values, or generate several specs."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{source}: expected UTF-8 text, got undecodable bytes ({exc.reason})."
        ) from None


def read_yaml(path: Path, stack: tuple[Path, ...] = (), budget: _Budget | None = None) -> dict:
    """Read a spec file with its `include:` chain merged (relative paths, cycles detected).

    base / executor / report / profiles merge recursively; grid, zip, seeds, search replace."""
    budget = budget if budget is not None else _Budget()
    source = str(path)
    if path in stack:
        raise SpecError(
            f"{source}: include: expected an acyclic include chain, got a cycle: {_chain((*stack, path))}."
        )
    if len(stack) >= MAX_INCLUDE_DEPTH:
        raise SpecError(
            f"{stack[-1]}: include: expected an include chain at most {MAX_INCLUDE_DEPTH} files deep, "
            f"got deeper: {_chain((*stack, path))}; include a common file directly instead of a chain."
        )
    budget.files += 1
    if budget.files > MAX_INCLUDE_FILES:
        raise SpecError(
            f"{stack[-1] if stack else source}: include: expected a spec made of at most "
            f"{MAX_INCLUDE_FILES} files (includes of includes counted each time), got more; include "
            f"each common file once."
        )
    if not path.is_file():
        where = f"{stack[-1]}: include" if stack else "spec"
        raise SpecError(f"{where}: expected an existing YAML file, got missing path {source!r}.")
    data = load_yaml_text(_read_bounded(path, source, budget), source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: <top level>: expected a mapping of spec keys, got {type(data).__name__}."
        )
    _check_keys(data, source)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise SpecError(
            f"{source}: include: expected a file path or a list of file paths, got {_short(includes)}."
        )
    merged: dict = {}
    for inc in includes:
        try:
            target = (path.parent / inc).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise SpecError(
                f"{source}: include: expected a file path, got {_short(inc)} ({exc})."
            ) from None
        merged = _merge_spec(merged, read_yaml(target, (*stack, path), budget))
    return _merge_spec(merged, data)


MERGED_KEYS = (
    "base",
    "executor",
    "report",
    "profiles",
)  # deep-merged on include; other keys are replaced


def _merge_spec(base: dict, top: dict) -> dict:
    """Include semantics: sections describing one run merge recursively, axes (grid, zip, seeds, search) replace."""
    out = dict(base)
    for k, v in top.items():
        out[k] = (
            deep_merge(out[k], v)
            if k in MERGED_KEYS and isinstance(v, dict) and isinstance(out.get(k), dict)
            else v
        )
    return out


def parse_spec(data: Any, source: str = "<memory>") -> Spec:
    """Validate an already-loaded mapping (includes resolved) into a Spec, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: <top level>: expected a mapping of spec keys, got {type(data).__name__}."
        )
    _check_keys(data, source)
    if "include" in data:
        raise SpecError(f"{source}: include: only allowed in spec files (resolved by load_spec).")
    modules = data.get("plugins", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise SpecError(
            f"{source}: plugins: expected a list of module names, got {_short(modules)}."
        )
    try:
        plugins.load_plugins()
        plugins.import_modules(modules)
    except plugins.PluginError as exc:
        raise SpecError(f"{source}: {exc}") from None
    spec = validate_model(Spec, {**data, "source": source}, source)
    check_axes(spec)
    return spec


FOLDER_OPTIONS = ("root", "path")  # benchmark options naming a folder (video_folder, token_folder)


def _anchor_folders(data: dict, folder: Path) -> dict:
    """Relative benchmark folders (`benchmark.root` / `benchmark.path`, in base and in profiles)
    made relative to the spec file's folder, as `include:` paths are, never to the working
    directory."""

    def anchor(value: Any) -> Any:
        relative = isinstance(value, str) and value and not Path(value).is_absolute()
        if relative and not value.startswith("~"):
            return str(folder / value)
        return value

    bench = data.get("base", {}).get("benchmark") if isinstance(data.get("base"), dict) else None
    if isinstance(bench, dict):
        for key in FOLDER_OPTIONS:
            if key in bench:
                bench[key] = anchor(bench[key])
    profiles = data.get("profiles")
    profiles = profiles if isinstance(profiles, dict) else {}
    for overrides in profiles.values():
        if isinstance(overrides, dict):
            for key in FOLDER_OPTIONS:
                if f"benchmark.{key}" in overrides:
                    overrides[f"benchmark.{key}"] = anchor(overrides[f"benchmark.{key}"])
    return data


def load_spec(path: str | Path) -> Spec:
    """Load, merge includes, and validate a spec file (relative benchmark folders are the spec
    folder's)."""
    p = Path(path).resolve()
    return parse_spec(_anchor_folders(read_yaml(p), p.parent), source=str(Path(path)))
