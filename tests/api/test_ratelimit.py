"""Rate limits: per client, per bucket, shared through Redis, degraded (not off) without it.

In-process tests run on a stopped clock (the `clock` fixture): the windows of memory storage
start at fixed instants, and a test that straddled one (or a slow machine that made it do so)
would see counts from two windows. Tests of other processes (tests/system/test_ratelimit.py)
use hour-long windows, which in Redis start at a key's first hit.
"""

import asyncio
import contextlib
import ipaddress
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn, cast

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI
from graphql import OperationType, parse

from api.access import rate_limits
from api.access.client_address import limit_key, parse_networks, resolve_client
from api.access.rate_limits import Bucket
from api.domain import service
from api.gql.rate_limits import MutationWithoutBucket, operation_buckets, operation_costs
from api.gql.schema import build_schema
from api.settings import InvalidSettings, Settings, load_settings
from api.storage.database import Database
from harness.ports import free_port
from tests.clocks import PATIENCE_SECONDS, FakeClock
from tests.conftest import IN_CI

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSPHRASE = "canary-passphrase-7f3a"
SECRET = "canary-secret-91be"

CREATE = "mutation { createSecret(secret: %s, passphrase: %s) { __typename } }"


# --- helpers ---------------------------------------------------------------------------


def skip_or_fail(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message + "; Redis tests are mandatory when CI=true")
    pytest.skip(message)


async def require_redis() -> None:
    connection = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=10)
    try:
        await cast("Awaitable[bool]", connection.ping())
    except (redis.RedisError, OSError) as exc:
        skip_or_fail(f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__})")
    finally:
        await connection.aclose()


@contextlib.asynccontextmanager
async def client_from(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def create(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    body = {"secret": SECRET, "passphrase": PASSPHRASE}
    return await http.post("/generate", json=body, headers=headers)


def _assert_limited(response: httpx.Response, window_seconds: int) -> int:
    assert response.status_code == 429, response.text
    assert response.json() == {"detail": rate_limits.TOO_MANY_REQUESTS}
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_seconds
    return retry_after


async def _redis_keys(prefix: str) -> list[str]:
    connection = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return [key async for key in connection.scan_iter(match=f"*/{prefix}/*")]
    finally:
        await connection.aclose()


async def delete_redis_keys(prefix: str) -> None:
    connection = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [key async for key in connection.scan_iter(match=f"*/{prefix}/*")]
        if keys:
            await connection.delete(*keys)
    finally:
        await connection.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone, so counts never leak between tests or runs."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def patient_storage(configure: Any) -> None:
    """Give Redis as long as any machine needs to answer, not the service's half second.

    On a busy machine the event loop may come back to a Redis answer later than the
    service's half second, and the limiter would (rightly) count locally from then on: what
    these tests check is the count itself. The outage test shows what a timeout does.
    """
    configure(RATE_LIMIT_STORAGE_TIMEOUT_SECONDS=str(PATIENCE_SECONDS))


@pytest.fixture
async def redis_prefix(prefix: str) -> AsyncIterator[str]:
    await require_redis()
    yield prefix
    await delete_redis_keys(prefix)


# --- client addresses ------------------------------------------------------------------

PROXIES = parse_networks(("10.0.0.0/8", "192.0.2.1", "fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),
        # A trusted proxy: the right-most address that is not a proxy.
        ("10.1.1.1", ["203.0.113.1"], "203.0.113.1"),
        ("10.1.1.1", ["6.6.6.6, 203.0.113.1, 10.2.2.2"], "203.0.113.1"),
        # Several header lines read as one list, in order.
        ("10.1.1.1", ["6.6.6.6", "203.0.113.1, 192.0.2.1"], "203.0.113.1"),
        # No header, or only proxies: the farthest address seen.
        ("10.1.1.1", [], "10.1.1.1"),
        ("10.1.1.1", ["10.3.3.3, 192.0.2.1"], "10.3.3.3"),
        # Garbage ends the walk at the proxy that passed it on.
        ("10.1.1.1", ["203.0.113.1, not-an-ip"], "10.1.1.1"),
        ("10.1.1.1", ["not-an-ip, 10.2.2.2"], "10.2.2.2"),
        # Ports, brackets and IPv4-mapped IPv6 are normalised.
        ("10.1.1.1", ["203.0.113.1:4711"], "203.0.113.1"),
        ("10.1.1.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:10.1.1.1", ["::ffff:203.0.113.9"], "203.0.113.9"),
        ("fd00::1", ["2001:db8::2"], "2001:db8::2"),
        (None, ["203.0.113.1"], None),
        ("not-an-ip", ["203.0.113.1"], None),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_proxies(
    peer: str | None, forwarded: list[str], expected: str | None
) -> None:
    found = resolve_client(peer, forwarded, PROXIES)
    assert found == (ipaddress.ip_address(expected) if expected else None)


def test_limit_key_groups_ipv6_by_64_and_keeps_ipv4() -> None:
    assert limit_key(ipaddress.ip_address("203.0.113.1")) == "203.0.113.1"
    a = limit_key(ipaddress.ip_address("2001:db8:1:2::1"))
    b = limit_key(ipaddress.ip_address("2001:db8:1:2:ffff::9"))
    assert a == b == "2001:db8:1:2::/64"
    assert limit_key(ipaddress.ip_address("2001:db8:1:3::1")) != a
    assert limit_key(None) == "unknown"


# --- counting GraphQL mutations ------------------------------------------------------


BUCKETS = operation_buckets(build_schema(Settings.model_construct()))


def test_every_mutation_has_a_bucket_from_its_field() -> None:
    assert BUCKETS == {
        OperationType.MUTATION: {
            "createSecret": Bucket.CREATE,
            "revealSecret": Bucket.REVEAL,
            "burnSecret": Bucket.REVEAL,
            "revokeSecret": Bucket.RECEIPT,
        },
        # `limits` reads no stored data: it is free.
        OperationType.QUERY: {"receipt": Bucket.RECEIPT},
    }


def test_a_mutation_without_a_bucket_fails_the_schema() -> None:
    import strawberry

    @strawberry.type
    class Query:
        ok: bool = True

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        def unlimited(self) -> bool:
            return True

    with pytest.raises(MutationWithoutBucket, match="unlimited"):
        operation_buckets(strawberry.Schema(query=Query, mutation=Mutation))


def test_mutation_costs_count_aliases_fragments_and_buckets() -> None:
    document = parse(
        """
        mutation M {
          a: revealSecret(secretKey: "k", passphrase: "p") { __typename }
          b: revealSecret(secretKey: "k", passphrase: "p") { __typename }
          a: revealSecret(secretKey: "k", passphrase: "p") { __typename }
          ... on Mutation { c: burnSecret(secretKey: "k", passphrase: "p") { __typename } }
          ...F
          ...F
          __typename
        }
        fragment F on Mutation { d: createSecret(secret: "s", passphrase: "p") { __typename } }
        query Q { limits { maxSecretBytes } }
        query R { limits { maxSecretBytes } a: receipt(receiptKey: "k") { __typename }
          b: receipt(receiptKey: "k") { __typename } }
        """
    )
    assert operation_costs(document, "M", BUCKETS) == {Bucket.REVEAL: 3, Bucket.CREATE: 1}
    assert operation_costs(document, "Q", BUCKETS) == {}
    assert operation_costs(document, "R", BUCKETS) == {Bucket.RECEIPT: 2}
    assert operation_costs(document, "missing", BUCKETS) == {}


# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RATE_LIMIT_CREATE", "lots"),
        ("RATE_LIMIT_REVEAL", ""),
        ("RATE_LIMIT_STORAGE_URL", "memcached://user:hunter2@host"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.example"),
    ],
)
def test_bad_rate_limit_settings_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettings, match=variable) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8,192.0.2.1", " 10.0.0.0/8  192.0.2.1 ", '["10.0.0.0/8", "192.0.2.1"]']
)
def test_trusted_proxies_accept_commas_spaces_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", value)
    assert load_settings().trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]


# --- REST and GraphQL over the in-process app (memory storage) -------------------------


async def test_create_is_limited_per_client_with_retry_after(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(RATE_LIMIT_CREATE="3/minute", RATE_LIMIT_KEY_PREFIX=prefix)
    async with (
        client_from(app, "198.51.100.1") as first,
        client_from(app, "198.51.100.2") as other,
    ):
        for _ in range(3):
            assert (await create(first)).status_code == 200
        _assert_limited(await create(first), 60)
        # Invalid requests count as well: the limit is checked before the body is.
        limited = await first.post("/generate", json={"secret": ""})
        assert limited.status_code == 429
        assert (await create(other)).status_code == 200
        # Reveals draw on their own bucket.
        missing = await first.post(f"/secrets/{'0' * 32}", json={"passphrase": PASSPHRASE})
        assert missing.status_code == 404


async def test_reveal_and_burn_share_one_bucket_across_transports(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(RATE_LIMIT_REVEAL="5/minute", RATE_LIMIT_KEY_PREFIX=prefix)
    key = "0" * 32
    reveal = f'mutation {{ revealSecret(secretKey: "{key}", passphrase: "x") {{ __typename }} }}'
    burn = f'mutation {{ burnSecret(secretKey: "{key}", passphrase: "x") {{ __typename }} }}'
    async with client_from(app, "198.51.100.3") as http:
        spend = [
            http.get(f"/secrets/{key}", params={"passphrase": "x"}),
            http.post(f"/secrets/{key}", json={"passphrase": "x"}),
            http.delete(f"/secrets/{key}", params={"passphrase": "x"}),
            http.post("/graphql", json={"query": reveal}),
            http.post("/graphql", json={"query": burn}),
        ]
        statuses = [(await request).status_code for request in spend]
        assert statuses == [404, 404, 404, 200, 200]
        _assert_limited(await http.post(f"/secrets/{key}", json={"passphrase": "x"}), 60)
        _assert_limited(await http.delete(f"/secrets/{key}", params={"passphrase": "x"}), 60)
        graphql = await http.post("/graphql", json={"query": burn})
        assert graphql.status_code == 429
        # Creating is a separate bucket.
        assert (await create(http)).status_code == 200


@pytest.mark.usefixtures("frozen_now")  # counts live secrets: none may expire meanwhile
async def test_graphql_over_the_limit_runs_nothing_and_says_why(
    app: FastAPI, configure: Any, prefix: str, db: Database, clock: FakeClock
) -> None:
    configure(RATE_LIMIT_CREATE="3/minute", RATE_LIMIT_KEY_PREFIX=prefix)
    two = (
        'mutation { a: createSecret(secret: "s", passphrase: "p") { __typename } '
        'b: createSecret(secret: "s", passphrase: "p") { __typename } }'
    )
    async with client_from(app, "198.51.100.4") as http:
        first = await http.post("/graphql", json={"query": two})
        assert first.status_code == 200
        assert first.json()["data"]["a"]["__typename"] == "CreatedSecret"
        before = await service.count_live(db=db)
        # Two more would exceed 3/minute: neither runs, though one would have fitted.
        refused = await http.post("/graphql", json={"query": two})
        assert await service.count_live(db=db) == before
        assert refused.status_code == 429
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60
        body = refused.json()
        assert body["data"] is None
        assert body["errors"] == [
            {
                "message": rate_limits.TOO_MANY_REQUESTS,
                "extensions": {"code": "RATE_LIMITED", "retryAfterSeconds": retry_after},
            }
        ]
        # Queries are not limited; the one hit left is still there.
        limits = await http.post("/graphql", json={"query": "{ limits { maxSecretBytes } }"})
        assert limits.status_code == 200
        one = await http.post("/graphql", json={"query": CREATE % ('"s"', '"p"')})
        assert one.json()["data"]["createSecret"]["__typename"] == "CreatedSecret"


async def test_retry_after_is_when_the_next_request_succeeds(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(RATE_LIMIT_CREATE="2/second", RATE_LIMIT_KEY_PREFIX=prefix)
    async with client_from(app, "198.51.100.5") as http:
        assert (await create(http)).status_code == 200
        assert (await create(http)).status_code == 200
        retry_after = _assert_limited(await create(http), 1)
        # The window ends 0.75 s after the hits: still refused before then.
        clock.advance(0.5)
        _assert_limited(await create(http), 1)
        clock.advance(retry_after - 0.5)
        assert (await create(http)).status_code == 200


async def test_several_limits_on_one_bucket(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(RATE_LIMIT_CREATE="100/second;2/hour", RATE_LIMIT_KEY_PREFIX=prefix)
    async with client_from(app, "198.51.100.6") as http:
        assert [(await create(http)).status_code for _ in range(3)] == [200, 200, 429]


async def test_forwarded_for_is_used_only_behind_trusted_proxies(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(
        RATE_LIMIT_CREATE="1/minute", RATE_LIMIT_KEY_PREFIX=prefix, TRUSTED_PROXIES="10.0.0.0/8"
    )
    async with client_from(app, "10.9.8.7") as proxy:
        alice = {"x-forwarded-for": "203.0.113.10"}
        # A client that writes its own header is still counted by what the proxy saw.
        spoofing_alice = {"x-forwarded-for": "6.6.6.6, 203.0.113.10"}
        bob = {"x-forwarded-for": "203.0.113.11"}
        assert (await create(proxy, **alice)).status_code == 200
        assert (await create(proxy, **spoofing_alice)).status_code == 429
        assert (await create(proxy, **bob)).status_code == 200
    async with client_from(app, "198.51.100.7") as direct:
        # Not a proxy: its header is ignored, so changing it does not escape the limit.
        assert (await create(direct, **{"x-forwarded-for": "203.0.113.12"})).status_code == 200
        assert (await create(direct, **{"x-forwarded-for": "203.0.113.13"})).status_code == 429


async def test_openapi_documents_429_with_retry_after(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    limited = [
        ("/generate", "post"),
        ("/secrets/{secret_key}", "get"),
        ("/secrets/{secret_key}", "post"),
        ("/secrets/{secret_key}", "delete"),
    ]
    for path, method in limited:
        assert "Retry-After" in paths[path][method]["responses"]["429"]["headers"]
    assert "429" not in paths["/healthz"]["get"]["responses"]


# --- Redis -----------------------------------------------------------------------------


@pytest.mark.usefixtures("patient_storage")
async def test_redis_storage_counts_and_keys_hold_no_secrets(
    app: FastAPI, configure: Any, redis_prefix: str, clock: FakeClock
) -> None:
    configure(
        RATE_LIMIT_CREATE="2/hour",
        RATE_LIMIT_REVEAL="2/hour",
        RATE_LIMIT_STORAGE_URL=REDIS_URL,
        RATE_LIMIT_KEY_PREFIX=redis_prefix,
    )
    async with client_from(app, "198.51.100.8") as http:
        created = await create(http)
        secret_key = created.json()["secret_key"]
        assert (await create(http)).status_code == 200
        _assert_limited(await create(http), 3600)
        wrong = await http.post(
            f"/secrets/{secret_key}", json={"passphrase": "wrong-" + PASSPHRASE}
        )
        assert wrong.status_code == 404
        revealed = await http.get(f"/secrets/{secret_key}", params={"passphrase": PASSPHRASE})
        assert revealed.json() == {"secret": SECRET}
        _assert_limited(await http.get(f"/secrets/{secret_key}", params={"passphrase": "x"}), 3600)

    keys = await _redis_keys(redis_prefix)
    assert sorted(key.split("/")[2] for key in keys) == ["create", "reveal"]
    for key in keys:
        assert "198.51.100.8" in key
        for canary in (secret_key, secret_key[:8], PASSPHRASE, SECRET):
            assert canary not in key


@pytest.mark.usefixtures("patient_storage")
@pytest.mark.parametrize("storage", ["memory", "redis"])
async def test_concurrent_requests_cannot_overshoot(
    app: FastAPI, configure: Any, prefix: str, storage: str, clock: FakeClock
) -> None:
    if storage == "redis":
        await require_redis()
    url = REDIS_URL if storage == "redis" else "memory://"
    configure(RATE_LIMIT_REVEAL="7/hour", RATE_LIMIT_STORAGE_URL=url, RATE_LIMIT_KEY_PREFIX=prefix)
    try:
        async with client_from(app, "198.51.100.11") as http:
            guesses = (
                http.post(f"/secrets/{'0' * 32}", json={"passphrase": "x"}) for _ in range(30)
            )
            statuses = [response.status_code for response in await asyncio.gather(*guesses)]
    finally:
        if storage == "redis":
            await delete_redis_keys(prefix)
    assert (statuses.count(404), statuses.count(429)) == (7, 23)


async def test_unreachable_redis_from_the_start_never_fails_requests(
    app: FastAPI, configure: Any, prefix: str, clock: FakeClock
) -> None:
    configure(
        RATE_LIMIT_CREATE="2/minute",
        RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{free_port()}/0",
        RATE_LIMIT_KEY_PREFIX=prefix,
    )
    async with client_from(app, "198.51.100.10") as http:
        assert [(await create(http)).status_code for _ in range(3)] == [200, 200, 429]
