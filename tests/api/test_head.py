"""`HEAD` wherever `GET` works, with the same status and headers and no body (RFC 9110).

The exception is the one `GET` that changes state, the original API's reveal by query
string: `HEAD` there is `405` and touches nothing, so a link checker or a proxy that sends
`HEAD` cannot reveal a secret or spend one of its attempts.
"""

import httpx
import pytest

from api.domain import service
from api.domain.hashing import PassphraseHasher
from api.settings import Settings
from api.storage.database import Database

UNKNOWN_KEY = "0" * 32
PASSPHRASE = "canary-head-passphrase"
# Headers that differ between any two answers.
_PER_ANSWER = {"date", "x-request-id"}

GET_PATHS = [
    "/healthz",
    "/readyz",
    f"/receipts/{UNKNOWN_KEY}",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/docs-assets/swagger-ui.css",
    "/metrics",
    "/graphql?query=%7B__typename%7D",
    "/graphql?variables=%5B%5D&query=%7B__typename%7D",  # a 400 as well
    "/nope",
]


def comparable(response: httpx.Response) -> tuple[int, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name not in _PER_ANSWER}
    if "/metrics" in str(response.url):
        headers.pop("content-length", None)  # the scrape itself changes the counters
    return response.status_code, headers


@pytest.mark.parametrize("path", GET_PATHS)
async def test_head_answers_as_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert head.content == b""
    # Content-Length included: it describes the body a GET gets.
    assert comparable(head) == comparable(got)


async def test_head_of_graphiql_is_the_page_without_it(client: httpx.AsyncClient) -> None:
    html = {"accept": "text/html"}
    got, head = (
        await client.get("/graphql", headers=html),
        await client.head("/graphql", headers=html),
    )
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]


async def test_head_of_a_receipt_spends_nothing_it_would_not_on_get(
    client: httpx.AsyncClient, db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret="s", passphrase=PASSPHRASE
    )
    head = await client.head(f"/receipts/{created.receipt_key}")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(
        (await client.get(f"/receipts/{created.receipt_key}")).content
    )


@pytest.mark.parametrize(
    "query", [f"?passphrase={PASSPHRASE}", "?passphrase=wrong", "", "?passphrase=%ff"]
)
async def test_head_never_reveals_nor_spends_an_attempt(
    client: httpx.AsyncClient,
    db: Database,
    query: str,
    settings: Settings,
    hasher: PassphraseHasher,
) -> None:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret="s", passphrase=PASSPHRASE
    )
    head = await client.head(f"/secrets/{created.secret_key}{query}")
    assert head.status_code == 405
    assert head.headers["allow"] == "GET, POST, DELETE"
    assert head.content == b""
    assert head.headers["cache-control"] == "no-store"
    receipt = (await client.get(f"/receipts/{created.receipt_key}")).json()
    assert (receipt["status"], receipt["failed_attempts"]) == ("pending", 0)
    revealed = await client.get(f"/secrets/{created.secret_key}?passphrase={PASSPHRASE}")
    assert revealed.json() == {"secret": "s"}


async def test_allow_lists_head_beside_every_safe_get(client: httpx.AsyncClient) -> None:
    for path, allowed in [
        ("/healthz", "GET, HEAD"),
        (f"/receipts/{UNKNOWN_KEY}", "GET, HEAD, DELETE"),
        ("/graphql", "GET, HEAD, POST"),
        (f"/secrets/{UNKNOWN_KEY}", "GET, POST, DELETE"),
        ("/generate", "POST"),
    ]:
        response = await client.request("PATCH", path)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed, path


async def test_head_is_logged_and_counted_as_head(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.head("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "api.access"]
    assert any(line.startswith("HEAD /healthz 200") for line in lines), lines
