"""Logs of the real command line, `uvicorn main:app`: every line JSON, no raw path, no secret."""

import json
from pathlib import Path

import httpx

from tests.api.test_logging import CANARY_PASSPHRASE, CANARY_SECRET, assert_no_canary
from tests.system.servers import run_server


def test_uvicorn_main_app_logs_json_without_raw_paths(tmp_path: Path) -> None:
    """The real command line: uvicorn's own lines and the access lines are all JSON."""
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        "SERVER_LOG": str(tmp_path / "uvicorn.log"),
        "LOG_FORMAT": "json",
    }
    with run_server(env) as server, httpx.Client(base_url=server.url) as http:
        body = {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE}
        key = http.post("/generate", json=body).json()["secret_key"]
        revealed = http.get(f"/secrets/{key}", params={"passphrase": CANARY_PASSPHRASE})
        assert revealed.json() == {"secret": CANARY_SECRET}
        request_id = revealed.headers["x-request-id"]
    output = server.log()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(e["logger"].startswith("uvicorn") and "Started" in e["message"] for e in entries)
    # uvicorn's access line, with its raw path, is replaced by the service's own.
    assert not [e for e in entries if e["logger"] == "uvicorn.access"]
    (access,) = [e for e in entries if e.get("request_id") == request_id]
    assert access["route"] == "/secrets/{secret_key}"
    assert access["status"] == 200
    assert_no_canary(output, [key])
