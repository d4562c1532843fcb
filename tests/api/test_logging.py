"""Logs: LOG_FORMAT and LOG_LEVEL, request ids, one access line per request, nothing secret."""

import contextlib
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.app import create_app
from api.settings import Settings
from api.telemetry.logs import JsonFormatter, RequestIdFilter, ServiceLogHandler, configure_logging

CANARY_SECRET = "canary-secret-5d04aa"
CANARY_PASSPHRASE = "canary-passphrase-e71f3b"
INSIDE = "logged inside a request"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back as they were before the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if isinstance(handler, ServiceLogHandler):
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def logged_app(
    app: FastAPI, configure: Any, restore_logging: None, caplog: pytest.LogCaptureFixture
) -> Any:
    """`async with logged_app(LOG_FORMAT=...) as client`: a fresh app with those settings."""
    # The test's own HTTP client logs full URLs; it is not the service.
    caplog.set_level(logging.WARNING, logger="httpx")

    @contextlib.asynccontextmanager
    async def start(**env: str) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(configure(**env))

        async def log_inside() -> dict[str, str]:
            logging.getLogger("tests.inside").warning(INSIDE)
            return {}

        application.add_api_route("/log-inside", log_inside)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return start


async def exercise(client: httpx.AsyncClient) -> list[str]:
    """Create, reveal, fail and burn with canaries; return the keys used."""
    body = {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE}
    keys = [(await client.post("/generate", json=body)).json()["secret_key"] for _ in range(2)]
    await client.get(f"/secrets/{keys[0]}", params={"passphrase": CANARY_PASSPHRASE})
    await client.get(f"/secrets/{keys[1]}", params={"passphrase": "wrong-" + CANARY_PASSPHRASE})
    await client.delete(f"/secrets/{keys[1]}", params={"passphrase": CANARY_PASSPHRASE})
    await client.get(f"/unknown/{keys[1]}", params={"passphrase": CANARY_PASSPHRASE})
    query = "mutation($k: String!, $p: String!) { revealSecret(secretKey: $k, passphrase: $p) { __typename } }"  # noqa: E501
    variables = {"k": keys[0], "p": CANARY_PASSPHRASE}
    await client.post("/graphql", json={"query": query, "variables": variables})
    await client.post("/graphql", json={"query": query, "variables": {"k": 1, "p": [variables]}})
    await client.post("/generate", json={"secret": [CANARY_SECRET], "passphrase": 7})
    return keys


def assert_no_canary(text: str, keys: list[str]) -> None:
    for canary in (*keys, CANARY_SECRET, CANARY_PASSPHRASE):
        assert canary not in text


def record_text(record: logging.LogRecord) -> str:
    """Everything a record carries: its message and every attribute a handler could print."""
    return " ".join(str(v) for v in (record.getMessage(), *vars(record).values()))


async def test_json_lines_carry_request_fields_and_no_secrets(
    logged_app: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    async with logged_app(LOG_FORMAT="json", LOG_LEVEL="INFO") as client:
        capsys.readouterr()
        keys = await exercise(client)
        inside = await client.get("/log-inside")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line parses

    access = [entry for entry in entries if entry["logger"] == "api.access"]
    assert len(access) >= 10
    for entry in access:
        assert set(entry) >= {"time", "level", "message", "request_id", "route", "method"}
        assert isinstance(entry["status"], int)
        assert isinstance(entry["duration_ms"], float | int)
    routes = {entry["route"] for entry in access}
    assert routes == {"/generate", "/secrets/{secret_key}", "/graphql", "unmatched", "/log-inside"}
    statuses = {(entry["method"], entry["route"], entry["status"]) for entry in access}
    assert ("DELETE", "/secrets/{secret_key}", 204) in statuses
    assert ("GET", "unmatched", 404) in statuses

    request_id = inside.headers["x-request-id"]
    mine = [entry for entry in entries if entry.get("request_id") == request_id]
    assert [entry["logger"] for entry in mine] == ["tests.inside", "api.access"]
    assert mine[0]["message"] == INSIDE

    assert_no_canary("\n".join(lines), keys)
    assert_no_canary("\n".join(record_text(r) for r in caplog.records), keys)


async def test_text_format_and_level(
    logged_app: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with logged_app(LOG_FORMAT="text", LOG_LEVEL="WARNING") as client:
        capsys.readouterr()
        keys = await exercise(client)
        inside = await client.get("/log-inside")
    err = capsys.readouterr().err
    assert "api.access" not in err  # INFO is below WARNING
    assert f"WARNING tests.inside [{inside.headers['x-request-id']}] {INSIDE}" in err
    assert_no_canary(err, keys)
    assert_no_canary("\n".join(record_text(r) for r in caplog.records), keys)


async def test_text_access_line(logged_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    async with logged_app(LOG_FORMAT="text", LOG_LEVEL="INFO") as client:
        capsys.readouterr()
        response = await client.get(f"/secrets/{'a' * 32}", params={"passphrase": "p"})
    request_id = response.headers["x-request-id"]
    assert f"INFO api.access [{request_id}] GET /secrets/{{secret_key}} 404 " in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-42.abc_DEF", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
        ("naïve", False),
    ],
)
async def test_incoming_request_id_is_kept_only_when_safe(
    client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    response = await client.get("/healthz", headers=[(b"x-request-id", sent.encode())])
    returned = response.headers["x-request-id"]
    if kept:
        assert returned == sent
    else:
        assert str(uuid.UUID(returned)) == returned


async def test_every_response_gets_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/nowhere")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_configure_logging_keeps_other_handlers(restore_logging: None) -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    try:
        configure_logging(Settings(log_format="json", log_level="ERROR"))
        configure_logging(Settings(log_format="text", log_level="INFO"))
        ours = [h for h in root.handlers if isinstance(h, ServiceLogHandler)]
        assert len(ours) == 1
        assert other in root.handlers
        assert root.level == logging.INFO
    finally:
        root.removeHandler(other)


def test_json_formatter_keeps_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("tests").makeRecord(
            "tests", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.request_id = "given"
    RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed here"
    assert entry["request_id"] == "given"
    assert entry["exception"].endswith("ValueError: boom")


def test_text_lines_escape_control_characters() -> None:
    from api.telemetry.logs import TextFormatter

    record = logging.LogRecord(
        "api.access", logging.INFO, __file__, 1, "GET %s 404", ("/\x1b[31mred\r\nforged\tx",), None
    )
    record.request_id = "-"
    line = TextFormatter().format(record)
    assert "\x1b" not in line
    assert "\r" not in line
    assert "\n" not in line
    assert "\\x1b[31mred\\x0d\\nforged\\x09x" in line
