"""Hostile input: every malformed request is a clear 4xx with a JSON body, never a 500.

Each payload carries a canary that must not come back in the answer. Oversized bodies are
refused before they are read: in-process for the rules, and against a real uvicorn process
(tests/system/test_hostile_input.py) for what matters in production, the worker's memory and
how soon the 413 arrives.
"""

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.domain import service
from api.http.media_types import REPEATED_KEY
from api.storage.database import Database

CANARY = "canary-hostile-4b1d"
UNKNOWN_KEY = "0" * 32
JSON = {"content-type": "application/json"}
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
BODY_ROUTES = ["/generate", f"/secrets/{UNKNOWN_KEY}"]

MIB = 1024 * 1024


def assert_clear_4xx(response: httpx.Response, status: int, *, graphql: bool = False) -> Any:
    """The answer is `status`, JSON, free of the canary, in the error shape of its door.

    Anything under `/graphql` answers in the GraphQL shape, with a code, whatever the status.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert CANARY not in response.text
    body = response.json()
    path = response.request.url.path
    if graphql or path == "/graphql" or path.startswith("/graphql/"):
        (error,) = body["errors"]
        assert isinstance(error["message"], str)
        assert isinstance(error["extensions"]["code"], str)
    else:
        assert isinstance(body["detail"], str | list)
    return body


def error_message(body: Any) -> str:
    """The message of a REST or a GraphQL error body."""
    return str(body["errors"][0]["message"] if "errors" in body else body["detail"])


def body_error_fields(response: httpx.Response) -> set[object]:
    body = assert_clear_4xx(response, 422)
    assert all(set(error) == {"type", "loc", "msg"} for error in body["detail"])
    return {tuple(error["loc"])[1] if len(error["loc"]) > 1 else None for error in body["detail"]}


# -- Malformed JSON, wrong shapes -------------------------------------------------------------
# Every malformed-JSON case of both doors is here; the cross-door table
# (tests/api/test_doors_agree.py) has one row of it, to show that both doors answer alike.


MALFORMED_JSON = [
    b'{"secret": "' + CANARY.encode() + b'", "passphrase": ',
    b'{"secret": "' + CANARY.encode() + b'", "passphrase": "' + CANARY.encode() + b'"',
    b"{'secret': '" + CANARY.encode() + b"'}",
    b'{"secret": "' + CANARY.encode() + b'",}',
    b'{"secret": "' + CANARY.encode() + b'" "passphrase": "p"}',
    CANARY.encode(),
    b'{"secret": "' + CANARY.encode() + b'\x00", "passphrase": "p"}',  # raw control character
]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("payload", MALFORMED_JSON)
async def test_malformed_json_is_400(client: httpx.AsyncClient, route: str, payload: bytes) -> None:
    body = assert_clear_4xx(await client.post(route, content=payload, headers=JSON), 400)
    assert body == {"detail": "Unable to parse request body as JSON"}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"\xff" + CANARY.encode(), 400),
        (
            b'{"query": "{ limits { maxTtlSeconds } }", "x": "\xc0\xaf' + CANARY.encode() + b'"}',
            400,
        ),
        (b'{"query": "' + CANARY.encode(), 400),
        (b"[" * 100_000, 400),
        (b"1", 400),
        (b"null", 400),
        (b"true", 400),
        (json.dumps(CANARY).encode(), 400),
        (json.dumps([{"query": "{ limits { maxTtlSeconds } }"}]).encode(), 400),
        (json.dumps({"query": 1}).encode(), 400),
        (
            json.dumps({"query": "{ limits { maxTtlSeconds } }", "variables": [CANARY]}).encode(),
            400,
        ),
        (json.dumps({"variables": {"k": CANARY}}).encode(), 400),
    ],
)
async def test_graphql_malformed_requests_are_400(
    client: httpx.AsyncClient, payload: bytes, status: int
) -> None:
    response = await client.post("/graphql", content=payload, headers=JSON)
    assert_clear_4xx(response, status, graphql=True)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"secret", "passphrase"}),
        ({"secret": CANARY}, {"passphrase"}),
        ({"passphrase": CANARY}, {"secret"}),
        ({"secret": None, "passphrase": None}, {"secret", "passphrase"}),
        ({"secret": 1, "passphrase": CANARY}, {"secret"}),
        ({"secret": True, "passphrase": CANARY}, {"secret"}),
        ({"secret": {"value": CANARY}, "passphrase": "p"}, {"secret"}),
        ({"secret": [CANARY], "passphrase": "p"}, {"secret"}),
        ({"secret": CANARY, "passphrase": 1234}, {"passphrase"}),
        ({"secret": CANARY, "passphrase": "p", "ttl_seconds": CANARY}, {"ttl_seconds"}),
        ({"secret": CANARY, "passphrase": "p", "ttl_seconds": 3600.5}, {"ttl_seconds"}),
        ({"secret": CANARY, "passphrase": "p", "ttl_seconds": [3600]}, {"ttl_seconds"}),
    ],
)
async def test_wrong_create_bodies_name_their_fields(
    client: httpx.AsyncClient, payload: dict[str, Any], fields: set[str]
) -> None:
    response = await client.post("/generate", json=payload)
    assert body_error_fields(response) == fields


@pytest.mark.parametrize(
    "payload",
    [{}, {"passphrase": None}, {"passphrase": 1}, {"passphrase": [CANARY]}, {"key": CANARY}],
)
async def test_wrong_reveal_bodies_are_422(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    response = await client.post(f"/secrets/{UNKNOWN_KEY}", json=payload)
    assert body_error_fields(response)


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "payload",
    [
        b"null",
        b"[]",
        json.dumps([{"secret": CANARY, "passphrase": CANARY}]).encode(),
        json.dumps(CANARY).encode(),
        b"12345",
        b"true",
    ],
)
async def test_non_objects_are_400(client: httpx.AsyncClient, route: str, payload: bytes) -> None:
    body = assert_clear_4xx(await client.post(route, content=payload, headers=JSON), 400)
    assert body == {"detail": "Request body must be a JSON object"}


@pytest.mark.parametrize("route", [*BODY_ROUTES, "/graphql"])
async def test_empty_body_is_400(client: httpx.AsyncClient, route: str) -> None:
    assert_clear_4xx(await client.post(route, content=b"", headers=JSON), 400)


# -- Bytes that are not UTF-8, nesting that is not sane ---------------------------------------


NOT_UTF8 = [
    b'{"secret": "\xff\xfe", "passphrase": "' + CANARY.encode() + b'"}',
    b'{"secret": "\xc0\xaf", "passphrase": "' + CANARY.encode() + b'"}',  # overlong "/"
    b"\xff" + CANARY.encode(),
]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("payload", NOT_UTF8)
async def test_invalid_utf8_is_400(client: httpx.AsyncClient, route: str, payload: bytes) -> None:
    assert_clear_4xx(await client.post(route, content=payload, headers=JSON), 400)


@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        (b'{"secret": "\\ud800", "passphrase": "' + CANARY.encode() + b'"}', "secret"),
        (b'{"secret": "' + CANARY.encode() + b'", "passphrase": "\\udfff"}', "passphrase"),
        # A surrogate encoded as UTF-8 bytes: Python's JSON decoder lets it through as text,
        # and the field's validation refuses it.
        (b'{"secret": "\xed\xa0\x80", "passphrase": "' + CANARY.encode() + b'"}', "secret"),
    ],
)
async def test_escaped_lone_surrogate_is_422(
    client: httpx.AsyncClient, payload: bytes, field_name: str
) -> None:
    response = await client.post("/generate", content=payload, headers=JSON)
    assert body_error_fields(response) == {field_name}


@pytest.mark.parametrize("route", BODY_ROUTES)
async def test_deep_nesting_is_a_4xx(client: httpx.AsyncClient, route: str) -> None:
    payload = b"[" * 100_000 + CANARY.encode()
    assert_clear_4xx(await client.post(route, content=payload, headers=JSON), 400)


# -- Repeated keys: one reading for the service and anything in front of it ---------------------


REPEATED = [
    b'{"secret": "first", "secret": "' + CANARY.encode() + b'", "passphrase": "p"}',
    b'{"secret": "s", "passphrase": "' + CANARY.encode() + b'", "passphrase": "p"}',
    b'{"secret": "s", "passphrase": "p", "ttl_seconds": 60, "ttl_seconds": 2592000}',
    b'{"secret": "s", "passphrase": "p", "x": {"a": 1, "a": 2}}',
]


@pytest.mark.parametrize("payload", REPEATED)
@pytest.mark.usefixtures("frozen_now")  # counts live secrets: none may expire meanwhile
async def test_repeated_keys_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database, payload: bytes
) -> None:
    live = await service.count_live(db=db)
    response = await client.post("/generate", content=payload, headers=JSON)
    body = assert_clear_4xx(response, 422)
    assert body == {"detail": [{"type": "json_repeated_key", "loc": ["body"], "msg": REPEATED_KEY}]}
    assert await service.count_live(db=db) == live


GRAPHQL_REVEAL = (
    "mutation($k: String!, $p: String!) { revealSecret(secretKey: $k, passphrase: $p) "
    "{ __typename } }"
)


async def test_graphql_refuses_repeated_keys_in_variables(client: httpx.AsyncClient) -> None:
    variables = f'{{"k": "{UNKNOWN_KEY}", "p": "first", "p": "{CANARY}"}}'
    body = f'{{"query": "{GRAPHQL_REVEAL}", "variables": {variables}}}'.encode()
    posted = await client.post("/graphql", content=body, headers=JSON)
    got = await client.get("/graphql", params={"query": "{ __typename }", "variables": variables})
    for response in (posted, got):
        (error,) = assert_clear_4xx(response, 422, graphql=True)["errors"]
        assert error == {"message": REPEATED_KEY, "extensions": {"code": "UNPROCESSABLE_CONTENT"}}


async def test_graphql_query_string_objects_are_named(client: httpx.AsyncClient) -> None:
    for name in ("variables", "extensions"):
        for text in ("[[", "[1]", '"x"', f'"{CANARY}'):
            response = await client.get("/graphql", params={"query": "{ __typename }", name: text})
            body = assert_clear_4xx(response, 400, graphql=True)
            assert error_message(body) == f"{name} must be a JSON object"


# -- Content types ------------------------------------------------------------------------------


UNSUPPORTED_MEDIA = [
    ("text/plain", json.dumps({"secret": CANARY, "passphrase": CANARY}).encode()),
    ("application/x-www-form-urlencoded", f"secret={CANARY}&passphrase={CANARY}".encode()),
    ("multipart/form-data; boundary=x", f"--x\r\n\r\n{CANARY}\r\n--x--\r\n".encode()),
    ("application/xml", f"<secret>{CANARY}</secret>".encode()),
    (None, json.dumps({"secret": CANARY, "passphrase": CANARY}).encode()),
]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(("content_type", "payload"), UNSUPPORTED_MEDIA)
async def test_unsupported_content_type_is_415(
    client: httpx.AsyncClient, route: str, content_type: str | None, payload: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(route, content=payload, headers=headers)
    body = assert_clear_4xx(response, 415)
    assert body["detail"] == "Content-Type must be application/json"


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/generate",
        content=json.dumps({"secret": "s", "passphrase": "p"}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


# -- Keys and routes ----------------------------------------------------------------------------


MALFORMED_KEYS = [
    "f" * 32 + CANARY * 500,  # over 10,000 characters
    CANARY * 600,
    "0" * 10_000,
    "abc",
    "0" * 31,
    "0" * 33,
    "A" * 32,  # hex, but not the lowercase the service hands out
    "g" * 32,
    "é" * 32,
    "%00" * 32,
    "..%2F..%2Fetc%2Fpasswd",
    "0" * 32 + "%0a",
    " " + "0" * 31,
]


@pytest.mark.parametrize("key", MALFORMED_KEYS)
async def test_malformed_keys_are_not_found(client: httpx.AsyncClient, key: str) -> None:
    responses = [
        await client.get(f"/secrets/{key}", params={"passphrase": CANARY}),
        await client.post(f"/secrets/{key}", json={"passphrase": CANARY}),
        await client.delete(f"/secrets/{key}", params={"passphrase": CANARY}),
    ]
    for response in responses:
        body = assert_clear_4xx(response, 404)
        # An encoded slash makes it another path, which no route knows.
        assert body in ({"detail": "Secret not found"}, {"detail": "Not Found"})
        assert key[:40] not in response.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", f"/secrets/{UNKNOWN_KEY}", "GET, POST, DELETE"),
        ("PATCH", f"/secrets/{UNKNOWN_KEY}", "GET, POST, DELETE"),
        ("OPTIONS", f"/secrets/{UNKNOWN_KEY}", "GET, POST, DELETE"),
        ("GET", "/generate", "POST"),
        ("PUT", "/generate", "POST"),
        ("DELETE", "/generate", "POST"),
        ("HEAD", "/generate", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/readyz", "GET, HEAD"),
        ("POST", f"/receipts/{UNKNOWN_KEY}", "GET, HEAD, DELETE"),
        ("PUT", "/graphql", "GET, HEAD, POST"),
        ("DELETE", "/graphql", "GET, HEAD, POST"),
    ],
)
async def test_wrong_methods_are_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path, json={"secret": CANARY})
    if method == "HEAD":
        assert response.status_code == 405
        assert response.content == b""
    else:
        body = assert_clear_4xx(response, 405)
        assert error_message(body) == "Method Not Allowed"
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/secrets",
        "/secrets/",
        f"/secrets/{UNKNOWN_KEY}/{CANARY}",
        f"/generate/{CANARY}",
        "/GENERATE",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/.env",
        f"/{CANARY * 2000}",
    ],
)
async def test_unknown_routes_are_404(client: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "POST"):
        response = await client.request(method, path, json={"secret": CANARY})
        assert assert_clear_4xx(response, 404) == {"detail": "Not Found"}


# -- GraphQL transport --------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "payload"), UNSUPPORTED_MEDIA)
async def test_graphql_unsupported_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None, payload: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/graphql", content=payload, headers=headers)
    assert_clear_4xx(response, 415, graphql=True)


async def test_graphql_mutation_over_get_is_refused(client: httpx.AsyncClient) -> None:
    query = f'mutation {{ createSecret(secret: "{CANARY}", passphrase: "p") {{ __typename }} }}'
    response = await client.get("/graphql", params={"query": query})
    assert_clear_4xx(response, 400, graphql=True)


async def test_graphql_bad_variables_in_query_string_are_400(client: httpx.AsyncClient) -> None:
    for variables in ("%FF", "[[[", "1", json.dumps([CANARY])):
        response = await client.get(
            "/graphql", params={"query": "{ limits { maxTtlSeconds } }", "variables": variables}
        )
        assert_clear_4xx(response, 400, graphql=True)


# -- Header fields, in-process -------------------------------------------------------------------


def header_count(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """How many header fields the client sends with `headers` added to its own."""
    return len(client.build_request("GET", "/healthz", headers=headers).headers)


@pytest.mark.parametrize("path", ["/healthz", f"/secrets/{UNKNOWN_KEY}", "/graphql"])
async def test_too_many_header_fields_are_431(
    client: httpx.AsyncClient, configure: Any, path: str
) -> None:
    configure(MAX_REQUEST_HEADERS="20")
    filler = {f"x-filler-{number}": CANARY for number in range(20)}
    response = await client.post(path, json={"passphrase": CANARY}, headers=filler)
    body = assert_clear_4xx(response, 431)
    assert error_message(body) == (
        "Request header fields too large: at most 20 fields and 16384 bytes"
    )
    if path == "/graphql":
        assert body["errors"][0]["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


async def test_header_field_count_limit_is_inclusive(
    client: httpx.AsyncClient, configure: Any
) -> None:
    configure(MAX_REQUEST_HEADERS="20")
    filler = {f"x-filler-{number}": "x" for number in range(20 - header_count(client, {}))}
    assert header_count(client, filler) == 20
    assert (await client.get("/healthz", headers=filler)).status_code == 200
    filler["x-one-more"] = "x"
    assert (await client.get("/healthz", headers=filler)).status_code == 431


async def test_header_bytes_limit_is_inclusive(client: httpx.AsyncClient, configure: Any) -> None:
    configure(MAX_REQUEST_HEADER_BYTES="2048")
    own = sum(len(name) + len(value) for name, value in client.headers.raw)
    own += len(b"host") + len(b"testserver")
    room = 2048 - own - len("x-big")
    assert (await client.get("/healthz", headers={"x-big": "x" * room})).status_code == 200
    response = await client.get("/healthz", headers={"x-big": CANARY + "x" * room})
    body = assert_clear_4xx(response, 431)
    assert error_message(body) == (
        "Request header fields too large: at most 100 fields and 2048 bytes"
    )


# -- Body size, in-process ----------------------------------------------------------------------


async def test_declared_oversize_body_is_413(client: httpx.AsyncClient, configure: Any) -> None:
    configure(MAX_REQUEST_BYTES="2048")
    for method, path in [
        ("POST", "/generate"),
        ("POST", f"/secrets/{UNKNOWN_KEY}"),
        ("DELETE", f"/secrets/{UNKNOWN_KEY}"),
        ("POST", "/graphql"),
    ]:
        response = await client.request(method, path, content=b"x" * 2049, headers=JSON)
        body = assert_clear_4xx(response, 413)
        assert error_message(body) == "Request body too large: at most 2048 bytes"
        assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


# Routes that never read a body, and what they answer without one.
BODILESS = [
    ("GET", "/healthz", 200),
    ("GET", "/readyz", 200),
    ("GET", f"/receipts/{UNKNOWN_KEY}", 404),
    ("DELETE", f"/receipts/{UNKNOWN_KEY}", 404),
    ("GET", f"/secrets/{UNKNOWN_KEY}?passphrase={CANARY}", 404),
    ("GET", "/graphql?query=%7B__typename%7D", 200),
    ("POST", "/healthz", 405),
    ("POST", "/nope", 404),
]


@pytest.mark.parametrize(("method", "path", "status"), BODILESS)
async def test_a_body_no_route_reads_is_not_limited(
    client: httpx.AsyncClient, configure: Any, method: str, path: str, status: int
) -> None:
    """Only what is read is bounded: a route without a body answers as if there were none.

    So no route answers a 413 its OpenAPI entry does not document.
    """
    configure(MAX_REQUEST_BYTES="2048")
    declared = await client.request(method, path, content=b"x" * 4096, headers=JSON)
    chunked = await client.request(
        method, path, content=Trickle(chunk=b"x" * 1000, total=10_000), headers=JSON
    )
    assert declared.status_code == chunked.status_code == status, declared.text


async def test_413_is_documented_exactly_where_it_is_answered(
    client: httpx.AsyncClient, configure: Any
) -> None:
    document = (await client.get("/openapi.json")).json()
    configure(MAX_REQUEST_BYTES="2048")
    checked = 0
    for template, operations in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", UNKNOWN_KEY, template)
        for method, operation in operations.items():
            response = await client.request(
                method.upper(), f"{path}?passphrase={CANARY}", content=b"x" * 4096, headers=JSON
            )
            documented = "413" in operation["responses"]
            assert (response.status_code == 413) == documented, (method, template)
            assert documented == ("requestBody" in operation), (method, template)
            checked += 1
    assert checked >= 8


async def test_body_at_the_limit_is_read(client: httpx.AsyncClient, configure: Any) -> None:
    configure(MAX_REQUEST_BYTES="2048")
    payload = json.dumps({"secret": "s", "passphrase": "p"}).encode()
    payload = payload[:-1] + b" " * (2048 - len(payload)) + b"}"
    assert len(payload) == 2048
    response = await client.post("/generate", content=payload, headers=JSON)
    assert response.status_code == 200, response.text


@dataclass
class Trickle:
    """A chunked request body that counts how much of it the server pulled."""

    chunk: bytes
    total: int
    pulled: int = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += len(self.chunk)
            yield self.chunk


async def test_chunked_oversize_body_stops_being_read(
    client: httpx.AsyncClient, configure: Any
) -> None:
    configure(MAX_REQUEST_BYTES="4096")
    for path in ("/generate", "/graphql"):
        upload = Trickle(chunk=b"x" * 1000, total=10 * MIB)
        response = await client.post(path, content=upload, headers=JSON)
        assert "content-length" not in response.request.headers
        body = assert_clear_4xx(response, 413)
        assert error_message(body) == "Request body too large: at most 4096 bytes"
        assert upload.pulled <= 4096 + 1000


async def test_chunked_body_within_the_limit_is_read(client: httpx.AsyncClient) -> None:
    payload = json.dumps({"secret": "s" * 5000, "passphrase": "p"}).encode()
    chunks = [payload[start : start + 1000] for start in range(0, len(payload), 1000)]

    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    response = await client.post("/generate", content=stream(), headers=JSON)
    assert response.status_code == 200, response.text


async def test_default_limit_admits_the_largest_secret(client: httpx.AsyncClient) -> None:
    # Every character of a secret of MAX_SECRET_BYTES may be escaped six-fold in JSON.
    payload = json.dumps({"secret": "\x00" * 65_536, "passphrase": "\x01" * 1024}).encode()
    assert len(payload) > 6 * 65_536
    response = await client.post("/generate", content=payload, headers=JSON)
    assert response.status_code == 200, response.text
