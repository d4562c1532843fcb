"""Past capacity, against a real uvicorn: clients that left are not hashed for.

One hashing slot, argon2 slowed down so a create holds it for a while: a create takes the
slot, four more queue behind it and their clients hang up once the service has read them.
Only the one that kept its client is stored, and the server logs each abandoned request as
499. Nothing here is timed: the test waits for the access lines that end each request.
"""

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.uvicorn import Uvicorn
from tests.clocks import PATIENCE_SECONDS, eventually_sync
from tests.system.servers import run_server

SLOW_ARGON2 = {
    "ARGON2_MEMORY_KIB": "65536",
    "ARGON2_TIME_COST": "6",
    "HASH_WORKERS": "1",
    "HASH_QUEUE_TIMEOUT_SECONDS": "30",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Uvicorn]:
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
    """Send a create and hang up as soon as the service has its body, not a moment later.

    With `Expect: 100-continue` uvicorn answers `100 Continue` when the application first
    asks for the body: the client sends it then and closes at once. The body reaches the
    application before the hang-up does, so the request is read, then queues for the slot.
    """
    host, port = base_url.removeprefix("http://").split(":")
    body = json.dumps({"secret": "abandoned", "passphrase": "p"}).encode()
    with socket.create_connection((host, int(port)), timeout=PATIENCE_SECONDS) as connection:
        connection.sendall(
            b"POST /generate HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(1024)
            assert chunk, "the service closed the connection before asking for the body"
            head += chunk
        assert head.startswith(b"HTTP/1.1 100 "), head
        connection.sendall(body)


def _access_lines(server: Uvicorn) -> list[str]:
    return re.findall(r"POST /generate (\d{3}) ", server.log())


def test_requests_whose_client_left_are_not_hashed(server: Uvicorn) -> None:
    before = _created(server.url)
    with httpx.Client(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        first = http.post("/generate", json={"secret": "kept", "passphrase": "p"})
        assert first.status_code == 200
        with httpx.Client(base_url=server.url, timeout=PATIENCE_SECONDS) as holder:
            holding = threading.Thread(
                target=lambda: holder.post("/generate", json={"secret": "held", "passphrase": "p"})
            )
            holding.start()
            # Sent after "held" and queued behind it. Whichever takes the slot first, a
            # request whose client has gone is cancelled: it is never stored.
            for _ in range(4):
                _send_and_hang_up(server.url)
            holding.join()
    # Each request's access line comes when it has ended: answered, or cancelled (499).
    eventually_sync(lambda: len(_access_lines(server)) >= 6, "an access line for every create")
    assert _created(server.url) - before == 2  # "kept" and "held" only
    assert sorted(_access_lines(server)) == ["200", "200", "499", "499", "499", "499"]
