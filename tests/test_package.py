"""The package's shape: no import circles, one-way layers, short functions (../shared/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vs_superslomo

PACKAGE = Path(vs_superslomo.__file__).parent
MODULES = sorted(
    ".".join(("vs_superslomo", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
)
MAX_FUNCTION_LINES = 60


def _source(module: str) -> Path:
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import of ``module``, lazy ones included, type-only ones not."""
    tree = ast.parse(_source(module).read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = module if _source(module).name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if len(submodules) < len(names):  # `from . import options` imports the module, not the package's names
                found.append((target or "", names))
            found += [(m, []) for m in submodules]
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    return cycles


def test_there_is_no_import_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]  # the check can fail
    assert "vs_superslomo.classical_flow" in _graph()["vs_superslomo.flows"]  # lazy and relative imports count
    assert _cycles(_graph()) == []


def test_the_network_is_pure_torch() -> None:
    imported = {t.split(".")[0] for t, _ in _imports("vs_superslomo.network")}
    assert not imported & {"cv2", "vapoursynth"}
    assert not {t for t, _ in _imports("vs_superslomo.network") if t.startswith("vs_superslomo")}


def test_training_and_evaluation_never_import_the_glue() -> None:
    glue = {"vs_superslomo.filter", "vs_superslomo.cli", "vs_superslomo.vsplugin"}
    for module in [m for m in MODULES if ".train" in m] + ["vs_superslomo.evaluate", "vs_superslomo.methods"]:
        assert not {t for t, _ in _imports(module)} & glue, module


def test_the_inference_side_imports_nothing_private_from_train() -> None:
    for module in (m for m in MODULES if ".train" not in m):
        for target, names in _imports(module):
            if target.startswith("vs_superslomo.train"):
                assert not [n for n in names if n.startswith("_")], (module, target, names)


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for module in MODULES:
        for node in ast.walk(ast.parse(_source(module).read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


@pytest.mark.parametrize("module", [m for m in MODULES if not m.endswith("__main__")])
def test_each_module_imports_alone(module: str) -> None:
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def _readme_section(title: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_readme_layout_lists_every_module_once() -> None:
    layout = _readme_section("Layout")
    for p in PACKAGE.rglob("*.py"):
        if p.name == "__init__.py":
            continue
        name = "vs_superslomo/" + p.relative_to(PACKAGE).as_posix()
        assert sum(line.startswith(name + " ") for line in layout.splitlines()) == 1, name


def test_the_readme_documents_every_option() -> None:
    from vs_superslomo.options import names

    table = _readme_section("Using the filter")
    for name in names():
        assert f"`{name}`" in table, name
