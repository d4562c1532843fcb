"""No secret, passphrase or secret key in a real uvicorn process's output (`LOG_LEVEL=DEBUG`).

The scenario and the checks are tests/api/test_log_leaks.py's, which runs it in-process.
"""

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from harness.uvicorn import Uvicorn
from tests.api.test_log_leaks import (
    PASSPHRASE_HASH_PREFIX,
    Canaries,
    assert_no_canary_in_answers,
    assert_no_canary_in_database,
    exercise,
)
from tests.system.servers import run_server


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Uvicorn]:
    env = {
        "DATABASE_URL": database_url,
        "SERVER_LOG": str(tmp_path / "uvicorn.log"),
        "LOG_LEVEL": "DEBUG",
        "GRAPHIQL": "false",
    }
    with run_server(env) as running:
        yield running


async def test_uvicorn_output_holds_no_secret(server: Uvicorn, database_url: str) -> None:
    canaries = Canaries.fresh()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answers = await exercise(http, canaries)
    # WebSocket handshakes, the query string carrying a key and a passphrase: refused, and
    # uvicorn's handshake line (raw path and query) is not written.
    ws_base = server.url.replace("http://", "ws://")
    for path in ("/graphql", f"/secrets/{canaries.keys[0]}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                f"{ws_base}{path}?passphrase={canaries.passphrase}",
                subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            ):
                pass
        assert refused.value.response.status_code == 403
    # Control characters in a path: a terminal escape and a forged line.
    await asyncio.to_thread(_raw_get, server.url, "/%1b[31mred%0d%0aforged%09line")
    server.terminate()
    server.wait(timeout=15)
    output = server.log()

    assert_no_canary_in_answers(answers, canaries)
    # The access log is on and the scenario is in it, by route template.
    assert "POST /secrets/{secret_key} 404" in output, output
    assert "GET /secrets/{secret_key} 200" in output, output
    assert "POST /graphql 200" in output, output
    for line in output.splitlines():
        leaked = canaries.found_in(line)
        assert not leaked, (line, leaked)
    await assert_no_canary_in_database(database_url, canaries)
    hashes = [line for line in output.splitlines() if PASSPHRASE_HASH_PREFIX in line]
    assert not hashes, hashes[:1]
    assert "WEBSOCKET refused 403" in output
    assert "Traceback" not in output
    assert " ERROR " not in output
    assert "\x1b" not in output
    assert "\r" not in output


def _raw_get(base_url: str, raw_path: str) -> None:
    """Send a request line exactly as given, percent-escapes and all."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert connection.recv(1024).startswith(b"HTTP/1.1 404")
