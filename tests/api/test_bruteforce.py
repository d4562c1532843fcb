"""Brute force: concurrent wrong guesses evaluate at most MAX_FAILED_ATTEMPTS passphrases."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.domain import events as domain_events

GUESSES = 100


@pytest.fixture
def events() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()

    def listen(event: str, count: int, label: str | None) -> None:
        counts[event] += count

    domain_events.subscribe(listen)
    yield counts
    domain_events._listeners.remove(listen)


async def create(client: httpx.AsyncClient) -> str:
    response = await client.post("/generate", json={"secret": "guard me", "passphrase": "right"})
    return str(response.json()["secret_key"])


async def assert_destroyed(client: httpx.AsyncClient, key: str, events: Counter[str]) -> None:
    assert events[domain_events.FAILED_ATTEMPT] == 5
    assert events[domain_events.DESTROYED_BY_ATTEMPT_LIMIT] == 1
    response = await client.post(f"/secrets/{key}", json={"passphrase": "right"})
    assert response.status_code == 404


async def test_concurrent_rest_guesses(client: httpx.AsyncClient, events: Counter[str]) -> None:
    key = await create(client)
    responses = await asyncio.gather(
        *(client.post(f"/secrets/{key}", json={"passphrase": f"guess-{i}"}) for i in range(GUESSES))
    )
    # 503: at that moment every attempt left was being checked by another guess.
    assert {r.status_code for r in responses} <= {404, 503}
    await assert_destroyed(client, key, events)


async def test_concurrent_graphql_guesses(client: httpx.AsyncClient, events: Counter[str]) -> None:
    key = await create(client)
    query = (
        "mutation($k: String!, $p: String!) "
        "{ revealSecret(secretKey: $k, passphrase: $p) { __typename } }"
    )

    async def guess(i: int) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": {"k": key, "p": f"guess-{i}"}}
        )
        return dict(response.json())

    answers = await asyncio.gather(*(guess(i) for i in range(GUESSES)))
    outcomes = {
        a["data"]["revealSecret"]["__typename"]
        if a["data"]
        else a["errors"][0]["extensions"]["code"]
        for a in answers
    }
    assert outcomes <= {"SecretNotFound", "SERVICE_UNAVAILABLE"}
    await assert_destroyed(client, key, events)


async def test_aliased_guesses_in_one_document_are_refused_unevaluated(
    client: httpx.AsyncClient, events: Counter[str], configure: Any
) -> None:
    """Within the document limits, a reveal still stands alone in its operation."""
    configure(GRAPHQL_MAX_ALIASES="200", GRAPHQL_MAX_TOKENS="5000")
    key = await create(client)
    fields = " ".join(
        f'g{i}: revealSecret(secretKey: "{key}", passphrase: "guess-{i}") {{ __typename }}'
        for i in range(GUESSES)
    )
    response = await client.post("/graphql", json={"query": f"mutation {{ {fields} }}"})
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("revealSecret must be the only field")
    assert events[domain_events.FAILED_ATTEMPT] == 0
    revealed = await client.post(f"/secrets/{key}", json={"passphrase": "right"})
    assert revealed.json() == {"secret": "guard me"}


async def test_aliases_over_the_limit_are_rejected_unevaluated(
    client: httpx.AsyncClient, events: Counter[str]
) -> None:
    key = await create(client)
    fields = " ".join(
        f'g{i}: revealSecret(secretKey: "{key}", passphrase: "guess-{i}") {{ __typename }}'
        for i in range(GUESSES)
    )
    response = await client.post("/graphql", json={"query": f"mutation {{ {fields} }}"})
    body = response.json()
    assert body["data"] is None
    # Rejected before execution, by the token or the alias limit, whichever trips first.
    message = body["errors"][0]["message"]
    assert "tokens" in message or "aliases" in message
    assert events[domain_events.FAILED_ATTEMPT] == 0
    revealed = await client.post(f"/secrets/{key}", json={"passphrase": "right"})
    assert revealed.json() == {"secret": "guard me"}
