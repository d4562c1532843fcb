"""The README's examples run against a real server, so they never rot."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ROOT
from harness.uvicorn import Uvicorn
from tests.system.servers import run_server

README = (ROOT / "README.md").read_text()
DOCUMENTED_BASE = "http://localhost:8000"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def api_examples() -> list[str]:
    # The block of the two install-and-run commands is what CI itself runs.
    return [
        block
        for block in blocks("sh")
        if DOCUMENTED_BASE in block and not block.startswith("scripts/")
    ]


def expected_lines(block: str) -> list[str]:
    """Comment lines showing output; those with placeholders (…) or sample keys are skipped."""
    shown = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    return [line for line in shown if "…" not in line and "7c20a8cb" not in line]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    database = tmp_path_factory.mktemp("readme") / "readme.db"
    with run_server({"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}) as running:
        yield running


def test_readme_has_examples_for_every_route() -> None:
    text = "\n".join(api_examples())
    for fragment in ("/generate", '-d \'{"passphrase"', "?passphrase=", "-X DELETE", "/healthz"):
        assert fragment in text
    assert "/readyz" in text
    assert "/graphql" in text


def test_shell_examples(server: Uvicorn, tmp_path: Path) -> None:
    script = "\n".join(api_examples()).replace(DOCUMENTED_BASE, server.url)
    result = subprocess.run(  # noqa: S603
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sum(len(expected_lines(block)) for block in api_examples()) >= 6
    for block in api_examples():
        for line in expected_lines(block):
            assert line in result.stdout, f"{line!r} not in output:\n{result.stdout}"


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_examples(server: Uvicorn, index: int) -> None:
    code = blocks("python")[index].replace(DOCUMENTED_BASE, server.url)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr


def test_operator_example(tmp_path: Path) -> None:
    """The *Operators* example, run as an operator runs it: a token-mode server, `ots-admin`."""
    (block,) = blocks("shell")
    database_url = f"sqlite+aiosqlite:///{tmp_path}/operators.db"
    env = {"DATABASE_URL": database_url, "CREATE_AUTH": "token"}
    with run_server(env) as running:
        result = subprocess.run(  # noqa: S603
            ["bash", "-euo", "pipefail", "-c", block.replace(DOCUMENTED_BASE, running.url)],  # noqa: S607
            cwd=tmp_path,
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert expected_lines(block) == ["401", "true", "ci-pipeline"]
    for line in expected_lines(block):
        assert line in result.stdout.splitlines(), result.stdout
    assert "revoked at" in result.stdout
    assert "secrets" in result.stdout  # ots-admin storage


def test_terminal_example(server: Uvicorn, tmp_path: Path) -> None:
    """The *In a terminal* example, with the `ots` command that scripts/install puts in .venv."""
    (block,) = blocks("bash")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTS_")}
    result = subprocess.run(  # noqa: S603
        ["bash", "-euo", "pipefail", "-c", block.replace(DOCUMENTED_BASE, server.url)],  # noqa: S607
        cwd=tmp_path,
        env={**env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no terminal: a missing passphrase fails rather than asks
    )
    assert result.returncode == 0, result.stderr
    assert expected_lines(block) == ["db password: hunter2", "status: revealed"]
    for line in expected_lines(block):
        assert line in result.stdout.splitlines(), result.stdout
    link, receipt = result.stdout.splitlines()[:2]
    assert link.startswith(f"{server.url}/s/")
    assert "#" in link
    assert receipt.startswith(f"{server.url}/r/")
