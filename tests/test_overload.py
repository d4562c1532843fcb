"""Past capacity, against a real uvicorn: clients that left are not hashed for.

One hashing slot, argon2 slowed down so a create holds it for a while: a first create takes
the slot, four more queue behind it and their clients hang up. Only the first is stored,
and the server logs each abandoned request as 499.
"""

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import RunningServer, run_server

SLOW_ARGON2 = {
    "ARGON2_MEMORY_KIB": "65536",
    "ARGON2_TIME_COST": "6",
    "HASH_WORKERS": "1",
    "HASH_QUEUE_TIMEOUT_SECONDS": "30",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        "SERVER_LOG": str(tmp_path / "uvicorn.log"),
        **SLOW_ARGON2,
    }
    with run_server(env) as running:
        yield running


def _created(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    found = re.search(r"^onetime_secrets_secrets_created_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _send_and_hang_up(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    body = json.dumps({"secret": "abandoned", "passphrase": "p"}).encode()
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /generate HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.05)  # the request is read and queued for the slot


def test_requests_whose_client_left_are_not_hashed(server: RunningServer) -> None:
    before = _created(server.base_url)
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        started = time.perf_counter()
        first = http.post("/generate", json={"secret": "kept", "passphrase": "p"})
        one_hash = time.perf_counter() - started
        assert first.status_code == 200
        with httpx.Client(base_url=server.base_url, timeout=60) as holder:
            holding = threading.Thread(
                target=lambda: holder.post("/generate", json={"secret": "held", "passphrase": "p"})
            )
            holding.start()
            time.sleep(0.05)  # the slot is taken
            for _ in range(4):
                _send_and_hang_up(server.base_url)
            holding.join()
    time.sleep(one_hash * 5 + 0.5)  # long enough for four more hashes, had they run
    assert _created(server.base_url) - before == 2  # "kept" and "held" only
    assert server.log().count("POST /generate 499") == 4
