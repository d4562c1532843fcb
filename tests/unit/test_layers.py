"""The suite's layers: only tests under tests/system/ start processes, and those are marked.

`pytest -m "not system"` is the fast loop: a unit or API test that started a server, a
browser or a racer would slow it down unseen. Processes are started through `harness` (and
Chromium and the racers through tests/system/), so no module outside tests/system/ imports them.
"""

import ast
from pathlib import Path

from harness import ROOT

TESTS = ROOT / "tests"
SYSTEM = TESTS / "system"
# The modules that start processes; `harness.ports` and `harness.postgres` start none.
LAUNCHERS = (
    "harness.uvicorn",
    "harness.redis_server",
    "harness.pgbouncer",
    "harness.postgres_cluster",
    "playwright",
    "tests.system",
)


def _imported(path: Path) -> set[str]:
    """Every module `path` imports; `from a import b` counts as `a` and as `a.b`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _starts_processes(module: str) -> bool:
    return any(module == launcher or module.startswith(f"{launcher}.") for launcher in LAUNCHERS)


def test_only_system_tests_import_what_starts_processes() -> None:
    outside = [path for path in TESTS.rglob("*.py") if not path.is_relative_to(SYSTEM)]
    assert TESTS / "unit" / "test_layers.py" in outside
    offenders = {
        str(path.relative_to(ROOT)): sorted(filter(_starts_processes, _imported(path)))
        for path in outside
    }
    assert {path: found for path, found in offenders.items() if found} == {}
