"""Hostile input against a real uvicorn process: bodies of 100 MB and oversized headers.

Refused before they are read: the worker's memory stays put and the 413 comes early. The
in-process tests of hostile input are in tests/api/test_hostile_input.py.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from harness.uvicorn import Uvicorn
from tests.api.test_hostile_input import MIB, error_message
from tests.system.servers import run_server

UPLOAD_BYTES = 100 * MIB
UPLOAD_CHUNK = 64 * 1024
# "A few MB": the allocator may keep a chunk or two of socket buffers, never the upload.
MAX_RSS_GROWTH = 5 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    directory = tmp_path_factory.mktemp("hostile")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'secrets.db'}",
        "SERVER_LOG": str(directory / "uvicorn.log"),
        "METRICS": "false",
    }
    with run_server(env) as running:
        yield running


@dataclass
class Upload:
    """What one raw upload saw: the answer, when it came, and how much had been sent by then."""

    status_line: bytes = b""
    response: bytes = b""
    seconds_to_answer: float | None = None
    sent_when_answered: int | None = None
    sent: int = 0
    peak_rss: int = 0


def _read_response(sock: socket.socket, upload: Upload, started: float) -> None:
    data = b""
    with_body = None
    while with_body is None or len(data) < with_body:
        try:
            chunk = sock.recv(65536)
        except OSError:  # a timeout: the test then fails on the missing answer
            break
        if not chunk:
            break
        data += chunk
        if with_body is None and b"\r\n\r\n" in data:
            if upload.seconds_to_answer is None:
                upload.seconds_to_answer = time.perf_counter() - started
                upload.sent_when_answered = upload.sent
            head, _ = data.split(b"\r\n\r\n", 1)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            with_body = len(head) + 4 + length
    upload.status_line = data.split(b"\r\n", 1)[0]
    upload.response = data


def _sample_rss(process: psutil.Process, upload: Upload, stop: threading.Event) -> None:
    while not stop.is_set():
        upload.peak_rss = max(upload.peak_rss, process.memory_info().rss)
        time.sleep(0.002)


def raw_upload(server: Uvicorn, *, chunked: bool, total: int = UPLOAD_BYTES) -> Upload:
    """POST `total` bytes to /generate over a plain socket while reading the answer."""
    address = urlsplit(server.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST /generate HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    payload = b"x" * UPLOAD_CHUNK
    frame = f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if chunked else payload
    upload = Upload()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(psutil.Process(server.pid), upload, stop))
    with socket.create_connection((host, port), timeout=30) as sock:
        started = time.perf_counter()
        sampler.start()
        reader = threading.Thread(target=_read_response, args=(sock, upload, started))
        reader.start()
        try:
            sock.sendall(head)
            # The chunked body is never terminated: only an early answer can end this request.
            while upload.sent < total:
                sock.sendall(frame)
                upload.sent += len(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reader.join(timeout=30)
        stop.set()
        sampler.join()
    return upload


def check_413(upload: Upload) -> tuple[float, int]:
    """Assert the answer was a JSON 413; return when it came and how much had been sent."""
    assert upload.status_line.startswith(b"HTTP/1.1 413"), upload.response[:500]
    head, body = upload.response.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["detail"].startswith("Request body too large")
    assert upload.seconds_to_answer is not None
    assert upload.sent_when_answered is not None
    return upload.seconds_to_answer, upload.sent_when_answered


def test_chunked_100_mb_upload_is_cut_off(server: Uvicorn, capsys: Any) -> None:
    process = psutil.Process(server.pid)
    raw_upload(server, chunked=True, total=4 * MIB)  # warm up the path once
    before = process.memory_info().rss

    upload = raw_upload(server, chunked=True)
    after = process.memory_info().rss

    seconds, sent_by_then = check_413(upload)
    growth = max(upload.peak_rss, after) - before
    with capsys.disabled():
        print(
            f"\nchunked 100 MB upload: 413 after {seconds * 1000:.1f} ms "
            f"({sent_by_then / MIB:.1f} MB sent by then, {upload.sent / MIB:.0f} MB in all); "
            f"worker RSS {before / MIB:.1f} MB -> peak {upload.peak_rss / MIB:.1f} MB, "
            f"growth {growth / MIB:.2f} MB"
        )
    assert upload.sent == UPLOAD_BYTES
    # Answered before the body ended (how fast is `scripts/bench`'s, not a test's, to say).
    assert sent_by_then < UPLOAD_BYTES
    assert growth < MAX_RSS_GROWTH
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_declared_100_mb_body_is_refused_before_it_is_sent(server: Uvicorn, capsys: Any) -> None:
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    upload = raw_upload(server, chunked=False)
    after = process.memory_info().rss

    seconds, sent_by_then = check_413(upload)
    growth = max(upload.peak_rss, after) - before
    with capsys.disabled():
        print(
            f"\ndeclared 100 MB upload: 413 after {seconds * 1000:.1f} ms "
            f"({sent_by_then / MIB:.1f} MB sent by then); worker RSS growth {growth / MIB:.2f} MB"
        )
    # Refused from its Content-Length: most of the body was never read.
    assert sent_by_then < UPLOAD_BYTES
    assert growth < MAX_RSS_GROWTH


def raw_exchange(server: Uvicorn, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` as it is; return the answer's head and body."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request,))
        sender.start()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, body
            body += chunk
        sender.join(timeout=30)
    return head, body


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(b"X-Big: " + b"a" * (32 * MIB) + b"\r\n", id="one 32 MB header"),
        pytest.param(b"".join(b"X-H%d: v\r\n" % n for n in range(2000)), id="2,000 headers"),
    ],
)
@pytest.mark.parametrize("path", ["/healthz", "/graphql?query=%7B__typename%7D"])
def test_real_server_refuses_oversized_header_fields(
    server: Uvicorn, fields: bytes, path: str
) -> None:
    """`uvicorn main:app` with no flag: its default parser lets these through; the app not."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + fields + b"\r\n"
    head, body = raw_exchange(server, request)
    assert head.startswith(b"HTTP/1.1 431"), head
    assert b"content-type: application/json" in head.lower()
    message = error_message(json.loads(body))
    assert message.startswith("Request header fields too large"), message
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_server_logged_no_error(server: Uvicorn) -> None:
    output = server.log()
    assert "Traceback" not in output, output
    assert " ERROR " not in output, output
