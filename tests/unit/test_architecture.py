"""The rules of the layout, checked rather than remembered.

`[tool.importlinter]` in pyproject.toml holds the contracts: the layers (app → doors →
shared HTTP handling (http, access, telemetry) → deps → domain → storage → models and
settings), storage reached only through the domain (HTTP gets the database from `api.deps`),
the tables known only to storage and the domain, no web framework in the domain or storage,
doors that never import each other, webhook delivery (`api.webhooks`) that imports nothing
else of the service, and a terminal client (`ots`) that imports nothing from the server.
`scripts/lint` checks them on the tree as it is; here they run on a copy with a planted
violation of each kind, so a contract that stopped catching anything would fail too. And both
doors call the same service functions.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SERVICE_FUNCTIONS = {"create_secret", "reveal_secret", "burn_secret"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the project at `root`."""
    return subprocess.run(  # noqa: S603 - our own tool, no shell, arguments built here
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("api/rest/docs.py", "from api.gql import schema", "The doors never import each other"),
        (
            "api/gql/types.py",
            "from api.rest import schemas",
            "The doors never import each other",
        ),
        ("api/domain/service.py", "import fastapi", "import no web framework"),
        ("api/storage/purge.py", "from starlette import status", "import no web framework"),
        ("api/storage/purge.py", "from api.domain import service", "Layers"),
        ("api/domain/inputs.py", "from api.telemetry import logs", "Layers"),
        ("api/pages/routes.py", "from api.rest import routes", "The doors never import each other"),
        ("api/deps.py", "from api.access import authentication", "Layers"),
        ("models/__init__.py", "from api.storage import statements", "Layers"),
        ("api/rest/routes.py", "from api.storage import statements", "Only the domain reaches"),
        (
            "api/access/authentication.py",
            "from api.storage import database",
            "Only the domain reaches",
        ),
        ("api/pages/routes.py", "from models import Secret", "Only storage and the domain know"),
        ("api/webhooks/delivery.py", "from api.domain import clock", "Webhook delivery stands"),
        ("api/webhooks/policy.py", "import fastapi", "Webhook delivery stands alone"),
        ("ots/envelope.py", "from api.domain import crypto", "imports nothing from the server"),
        ("ots/link.py", "import models", "imports nothing from the server"),
    ],
)
def test_a_planted_violation_is_caught(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    for name in ("api", "models", "ots"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{planted}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    # A contract with ignored imports says so after its verdict: "… BROKEN (1 ignored import)".
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout


def _service_calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "service"
    }


def test_both_doors_call_the_same_service_functions() -> None:
    rest = _service_calls(ROOT / "api" / "rest" / "routes.py")
    graphql = _service_calls(ROOT / "api" / "gql" / "schema.py")
    assert rest >= SERVICE_FUNCTIONS
    assert graphql >= SERVICE_FUNCTIONS
