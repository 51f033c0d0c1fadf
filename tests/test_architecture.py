"""The shape of the code: layer contracts (import-linter, configured in pyproject.toml), no import
cycles, the light lookup path, short functions, and the kind registry as the one place a kind lives."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tcpkb"


def test_import_contracts_are_kept():
    """lint-imports checks pyproject.toml's contracts: the layers and the forbidden imports."""
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout


def test_no_import_cycles():
    import grimp

    graph = grimp.build_graph("tcpkb")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.find_shortest_chain(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    # a package's __init__ importing its own submodules (the kind registry) is how packages work
    cycles = [c for c in cycles if not _parent_and_child(*c.split(" <-> "))]
    assert not cycles, "\n".join(cycles)


def _parent_and_child(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_a_plain_lookup_imports_no_heavy_library(tmp_path, kb_db):
    """`tcpkb errno 104` must cost close to the interpreter's own start: the fast path loads
    the kind registry, sqlite3 and the standard library, never YAML, sqlite-utils, Typer,
    markdown, Jinja2 or Datasette."""
    code = ("import sys, runpy; sys.argv = ['tcpkb', 'errno', '104', '--json']\n"
            "from tcpkb.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('yaml', 'sqlite_utils', 'typer', 'click', 'markdown_it', 'jinja2', 'datasette', 'pygments', "
            "'dataclasses', 'tcpkb.build.database'))\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    import os

    env = {**os.environ, "TCPKB_DB": str(kb_db)}  # a built database: the lookup, not a first build
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=env)
    heavy = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY")]
    assert heavy == ["HEAVY []"], proc.stderr[-2000:]
    assert '"id": "errno:ECONNRESET"' in proc.stdout


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1, node.lineno


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_80_lines(path):
    long = [f"{name} (line {line}): {n} lines" for name, n, line in _functions(path) if n > 80]
    assert not long, long


def test_every_kind_module_is_registered_and_complete():
    from tcpkb.kinds import KINDS, MODULES
    from tcpkb.kinds.base import Kind

    on_disk = {p.stem for p in (PACKAGE / "kinds").glob("*.py")} - {"__init__", "base"}
    assert on_disk == set(MODULES)
    for name, kind in KINDS.items():
        assert isinstance(kind, Kind) and kind.name == name
        assert kind.plural and kind.intro and kind.table and kind.command_help and kind.query_help
        assert kind.table in kind.descriptions, f"{name}: its table needs a description for Datasette"
        assert set(kind.sections) >= set(kind.required_sections)
