"""The package layout keeps its shape: few top-level modules, layer contracts, no cycles,
imports at module top unless a comment says why not."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stream_rec

PACKAGE = Path(stream_rec.__file__).parent
ROOT = PACKAGE.parent
LAYERS = {"core", "model", "llm", "serving", "broker", "local", "ab", "evaluation",
          "datasets", "bench", "chaos"}


def test_the_top_level_holds_at_most_eight_modules_and_only_layer_packages() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}

    assert len(modules) <= 8, modules
    assert packages == LAYERS


def test_the_import_contracts_hold(tmp_path: Path) -> None:
    """``[tool.importlinter]`` in pyproject.toml: layers, purity of the core, no cycles."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.fail(f"{lint_imports} is missing: install the dev extras (make install)")

    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    type_checking = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Import | ast.ImportFrom) and node.col_offset > 0
                and id(node) not in type_checking):
            here, above = lines[node.lineno - 1], lines[node.lineno - 2]
            if "# lazy:" not in here and "# lazy:" not in above:
                found.append((node.lineno, here.strip()))
    return found


def test_every_import_inside_a_function_says_why_it_is_lazy() -> None:
    unexplained = {str(path.relative_to(ROOT)): found for path in sorted(PACKAGE.rglob("*.py"))
                   if (found := _function_level_imports(path))}

    assert unexplained == {}, "move these to the module top, or add '# lazy: why'"


def test_every_subpackage_says_what_it_holds() -> None:
    for name in sorted(LAYERS):
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc, f"stream_rec/{name}/__init__.py needs a docstring naming what it holds"


def test_test_files_have_unique_names() -> None:
    """pytest imports test modules by basename (no packages under tests/): two files of the
    same name in different folders stop the whole run at collection."""
    seen: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
