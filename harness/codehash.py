"""Code versions: what a component's code is, as run ids hash it.

A module's version is a hash of its own file and of every module it imports inside the project
(transitively: the repository, and the folder a plug-in module was imported from), each read as
its syntax tree with docstrings and the text of raised errors removed. So comments, docstrings,
error messages and formatting (a `ruff format` of the tree) keep versions; any other edit of the
code a component runs changes them. Imports under `if TYPE_CHECKING:` are not followed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def version_of(component: Any) -> str:
    """A registered component's code version: its own `code_version()` when it defines one (e.g. a
    declared version string), else the version of the module that defines it."""
    own = getattr(component, "code_version", None)
    return str(own()) if callable(own) else module_version(component.__module__)


@functools.cache
def module_version(name: str) -> str:
    """16 hex digits over the normalised syntax trees of module `name` and its in-project imports."""
    roots = (REPO_ROOT, *_root_of(name))
    files = _closure(name, roots)
    digest = hashlib.sha256()
    for module in sorted(files):
        digest.update(f"{module}\n{_normalised(files[module])}\n".encode())
    return digest.hexdigest()[:16]


@functools.cache
def _normalised(path: Path) -> str:
    """ast.dump of the file without docstrings and error texts (cached per process, like the versions)."""
    return ast.dump(_Normalise().visit(ast.parse(path.read_text())))


def clear_cache() -> None:
    """Forget the versions computed so far (after the code changed under a running process)."""
    module_version.cache_clear()
    _normalised.cache_clear()


def _root_of(name: str) -> tuple[Path, ...]:
    """The sys.path folder module `name` was found under (a plug-in outside the repository)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ()
    depth = name.count(".") + 1 + (Path(spec.origin).name == "__init__.py")
    return (Path(spec.origin).resolve().parents[depth - 1],)


def _file_of(name: str, roots: tuple[Path, ...]) -> Path | None:
    parts = name.split(".")
    for root in roots:
        for candidate in (
            root.joinpath(*parts).with_suffix(".py"),
            root.joinpath(*parts, "__init__.py"),
        ):
            if candidate.is_file() and "site-packages" not in candidate.parts:
                return candidate
    return None


def _closure(name: str, roots: tuple[Path, ...]) -> dict[str, Path]:
    """{module: file} of `name`, its parent packages and everything they import inside `roots`."""
    found: dict[str, Path] = {}
    todo = [name]
    while todo:
        module = todo.pop()
        path = None if module in found else _file_of(module, roots)
        if path is None:
            continue
        found[module] = path
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        todo += [module.rpartition(".")[0]] if "." in module else []
        todo += _imports(ast.parse(path.read_text()), package)
    return found


def _imports(tree: ast.Module, package: str) -> list[str]:
    """Module names a tree imports (a `from a import b` may name module a.b), outside TYPE_CHECKING."""
    names: list[str] = []
    hidden = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.dump(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


class _Normalise(ast.NodeTransformer):
    """Drops docstrings and the text of raised errors (string arguments of `raise X(...)`)."""

    def _undoc(self, node: Any) -> Any:
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _undoc

    def visit_Raise(self, node: ast.Raise) -> ast.Raise:
        if isinstance(node.exc, ast.Call):
            node.exc.args = [a for a in node.exc.args if not _is_text(a)]
        return node


def _is_text(node: ast.AST) -> bool:
    """A string literal, f-string or a concatenation of them (an error message)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left) or _is_text(node.right)
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
