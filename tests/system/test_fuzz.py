"""Property-based fuzzing with Schemathesis against a real uvicorn server.

REST is fuzzed from the OpenAPI document the server publishes, GraphQL from the schema its
endpoint publishes, each through Schemathesis's own command line (every phase it supports:
examples, coverage, fuzzing and, for REST, stateful sequences create → reveal/burn) with
every check: no server error; status codes, content types, headers and bodies as
documented; invalid data rejected, valid data accepted; `405` with `Allow` for undocumented
methods. Examples per operation are bounded so a run takes well under a minute per backend.
The number of cases run is printed with the test's result.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.uvicorn import Uvicorn
from tests.system.servers import run_server

OPENAPI_MAX_EXAMPLES = 50
GRAPHQL_MAX_EXAMPLES = 75
RUN_TIMEOUT_SECONDS = 240

# The OpenAPI document cannot know the passphrase a reader needs, so the stateful phase is
# told here how a created secret is revealed or burnt.
_KEY = {"secret_key": "$response.body#/secret_key"}
_PASSPHRASE = "$request.body#/passphrase"
LINKS = {
    "RevealByQuery": {
        "operationId": "reveal_by_query_secrets__secret_key__get",
        "parameters": {**_KEY, "passphrase": _PASSPHRASE},
    },
    "RevealByBody": {
        "operationId": "reveal_by_body_secrets__secret_key__post",
        "parameters": _KEY,
        "requestBody": {"passphrase": _PASSPHRASE},
    },
    "Burn": {
        "operationId": "burn_secrets__secret_key__delete",
        "parameters": _KEY,
        "requestBody": {"passphrase": _PASSPHRASE},
    },
}


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    log = tmp_path_factory.mktemp("fuzz-server") / "uvicorn.log"
    env = {"DATABASE_URL": database_url, "SERVER_LOG": str(log), "GRAPHIQL": "false"}
    with run_server(env) as running:
        yield running


def schemathesis_run(location: str, workdir: Path, *options: str) -> dict[str, Any]:
    """Run `schemathesis run` in `workdir`; return its JSON report, failing on any failure."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", location,
        "--checks", "all",
        "--report", "json", "--report-dir", str(workdir / "report"),
        *options,
    ]  # fmt: skip
    completed = subprocess.run(  # noqa: S603 - our interpreter, arguments built here
        command,
        cwd=workdir,  # its example database and cassettes stay out of the working tree
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (report_file,) = (workdir / "report").glob("*.json")
    report: dict[str, Any] = json.loads(report_file.read_text())
    return report


def assert_clean(
    report: dict[str, Any], label: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = report["test_cases"]
    with capsys.disabled():
        print(
            f"\nschemathesis {label} [{backend}]: {cases['generated']} cases "
            f"in {report['running_time']:.1f} s, seed {report['seed']}"
        )
    assert report["complete"], report
    assert report["failures"] == [], report["failures"]
    assert report["errors"] == [], report["errors"]
    assert cases["with_failures"] == 0
    assert cases["errored"] == 0
    assert report["operations"]["tested"] == report["operations"]["total"] > 0
    assert cases["generated"] > 0


def assert_no_trace_in(server: Uvicorn) -> None:
    # A failure masked in the response (GraphQL's "Unexpected error.") still leaves a trace.
    output = server.log()
    assert "Traceback" not in output, output
    assert " ERROR " not in output, output


def test_openapi(
    server: Uvicorn, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    document["paths"]["/generate"]["post"]["responses"]["200"]["links"] = LINKS
    # Which notify_url a create accepts is the instance's allow list (the cross-door table
    # covers it); this server allows none, so the only valid one here is null.
    create = document["components"]["schemas"]["CreateSecretRequest"]["properties"]
    create["notify_url"] = {"type": "null"}
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(document))

    report = schemathesis_run(
        str(schema_file),
        tmp_path,
        "--url", server.url,
        "--max-examples", str(OPENAPI_MAX_EXAMPLES),
    )  # fmt: skip

    assert_clean(report, "OpenAPI", backend, capsys)
    assert set(report["phases"]) >= {"examples", "coverage", "fuzzing", "stateful"}
    assert {phase["status"] for phase in report["phases"].values()} == {"success"}
    assert_no_trace_in(server)


def test_graphql(
    server: Uvicorn, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = schemathesis_run(
        f"{server.url}/graphql",
        tmp_path,
        "--max-examples", str(GRAPHQL_MAX_EXAMPLES),
    )  # fmt: skip

    assert_clean(report, "GraphQL", backend, capsys)
    assert report["phases"]["fuzzing"]["status"] == "success"
    # limits, receipt; createSecret, revealSecret, burnSecret, revokeSecret
    assert report["operations"]["total"] == 6
    assert_no_trace_in(server)
