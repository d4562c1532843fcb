"""No secret, passphrase or secret key in any log line, error body or database column.

One scenario runs over REST and GraphQL: it creates, reveals (by query string, by body and
by GraphQL), burns, guesses wrong, breaks every validation rule and sends bodies that are
malformed, oversized or of the wrong type, each carrying canary values. The scenario runs
against a real uvicorn process with its access log on at `LOG_LEVEL=DEBUG`, whose whole output
is searched (tests/system/test_log_leaks.py), and in-process, here, where every log record
(message, arguments, extra fields and traceback) is searched. Then every column of every
table is searched.
"""

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine

# The test's own HTTP client logs the URLs it calls; those lines are not the service's.
CLIENT_LOGGERS = ("httpx", "httpcore")
# A passphrase hash in a log would let whoever reads the logs guess passphrases offline.
PASSPHRASE_HASH_PREFIX = "$argon2"
GRAPHQL_CREATE = (
    "mutation Create($secret: String!, $passphrase: String!) {"
    " createSecret(secret: $secret, passphrase: $passphrase, ttlSeconds: 3600) {"
    " __typename ... on CreatedSecret { secretKey } ... on InvalidInput { field message } } }"
)
GRAPHQL_REVEAL = (
    "mutation Reveal($key: String!, $passphrase: String!) {"
    " revealSecret(secretKey: $key, passphrase: $passphrase) {"
    " __typename ... on RevealedSecret { secret } ... on SecretNotFound { message } } }"
)


@dataclass
class Canaries:
    """Values that must never show up where they do not belong, and the keys made with them."""

    secret: str
    passphrase: str
    wrong_passphrase: str
    keys: list[str] = field(default_factory=list)

    @classmethod
    def fresh(cls) -> "Canaries":
        token = uuid.uuid4().hex[:10]
        return cls(
            secret=f"canary-secret-{token}",
            passphrase=f"canary-passphrase-{token}",
            wrong_passphrase=f"canary-wrong-{token}",
        )

    @property
    def values(self) -> list[str]:
        return [self.secret, self.passphrase, self.wrong_passphrase, *self.keys]

    def found_in(self, text: str) -> list[str]:
        return [value for value in self.values if value in text]


async def create(http: httpx.AsyncClient, canaries: Canaries) -> str:
    response = await http.post(
        "/generate",
        json={"secret": canaries.secret, "passphrase": canaries.passphrase, "ttl_seconds": 3600},
    )
    assert response.status_code == 200, response.text
    key = str(response.json()["secret_key"])
    canaries.keys += [key, str(response.json()["receipt_key"])]
    return key


GRAPHQL_RECEIPT = "query($key: String!) { receipt(receiptKey: $key) { __typename } }"
GRAPHQL_REVOKE = "mutation($key: String!) { revokeSecret(receiptKey: $key) { __typename } }"


async def graphql(http: httpx.AsyncClient, query: str, **variables: Any) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables})


async def exercise(http: httpx.AsyncClient, canaries: Canaries) -> list[httpx.Response]:
    """Run the whole scenario; return every answer that must not hold a canary."""
    secret, passphrase, wrong = canaries.secret, canaries.passphrase, canaries.wrong_passphrase
    answers: list[httpx.Response] = []

    # Reveal by query string (the passphrase is in the URL), after wrong guesses of each kind.
    key = await create(http, canaries)
    answers += [
        await http.get(f"/secrets/{key}", params={"passphrase": wrong}),
        await http.post(f"/secrets/{key}", json={"passphrase": wrong}),
        await http.delete(f"/secrets/{key}", params={"passphrase": wrong}),
    ]
    revealed = await http.get(f"/secrets/{key}", params={"passphrase": passphrase})
    assert revealed.json() == {"secret": secret}
    answers.append(await http.get(f"/secrets/{key}", params={"passphrase": passphrase}))

    # Reveal by body, burn, and one left stored for the database search.
    key = await create(http, canaries)
    revealed = await http.post(f"/secrets/{key}", json={"passphrase": passphrase})
    assert revealed.json() == {"secret": secret}
    answers.append(await http.post(f"/secrets/{key}", json={"passphrase": passphrase}))
    key = await create(http, canaries)
    burnt = await http.delete(f"/secrets/{key}", params={"passphrase": passphrase})
    assert burnt.status_code == 204
    stored = await create(http, canaries)

    # The sender's receipt, read and revoked on both doors, and looked up with a secret key.
    await create(http, canaries)
    receipt_key = canaries.keys[-1]
    answers += [
        await http.get(f"/receipts/{receipt_key}"),
        await graphql(http, GRAPHQL_RECEIPT, key=receipt_key),
        await http.delete(f"/receipts/{receipt_key}"),
        await graphql(http, GRAPHQL_REVOKE, key=receipt_key),
        await http.get(f"/receipts/{stored}"),
        await http.get(f"/receipts/{receipt_key}/", params={"passphrase": passphrase}),
        await http.get(f"/secrets/{stored}/", params={"passphrase": passphrase}),
        await http.delete(f"/secrets/{stored}/", params={"passphrase": passphrase}),
    ]

    # GraphQL: create, guess wrong, reveal, and mistakes that quote values in other services.
    created = await graphql(http, GRAPHQL_CREATE, secret=secret, passphrase=passphrase)
    key = created.json()["data"]["createSecret"]["secretKey"]
    canaries.keys.append(key)
    answers.append(await graphql(http, GRAPHQL_REVEAL, key=key, passphrase=wrong))
    revealed = await graphql(http, GRAPHQL_REVEAL, key=key, passphrase=passphrase)
    assert revealed.json()["data"]["revealSecret"]["secret"] == secret
    answers += [
        await graphql(http, GRAPHQL_REVEAL, key=key, passphrase=passphrase),
        await graphql(http, GRAPHQL_REVEAL, key=stored, passphrase=[passphrase]),
        await graphql(http, GRAPHQL_CREATE, secret={"value": secret}, passphrase=7),
        await graphql(http, GRAPHQL_CREATE, secret=secret + "x" * 70_000, passphrase=passphrase),
        await graphql(http, GRAPHQL_CREATE, secret=secret, passphrase=passphrase * 100),
        await http.post(
            "/graphql",
            json={"query": f'mutation {{ createSecret(secret: 12, passphrase: "{passphrase}") }}'},
        ),
        await http.post(
            "/graphql",
            json={
                "query": f'mutation {{ revealSecret(secretKey: "{stored}", '
                f'passphrase: "{passphrase}", note: "{secret}") {{ __typename }} }}'
            },
        ),
        await http.post(
            "/graphql",
            json={"query": f'mutation {{ createSecret(secret: "{secret}", passphrase: "{wrong}"'},
        ),
        await http.get(
            "/graphql",
            params={"query": GRAPHQL_CREATE, "variables": json.dumps({"secret": secret})},
        ),
        await http.post(
            "/graphql",
            content=f'{{"query": "{GRAPHQL_CREATE}", "x": "{secret}\xff"}}'.encode("latin-1"),
            headers={"content-type": "application/json"},
        ),
        await http.post("/graphql", content=f"{secret} {passphrase}".encode()),
    ]

    # REST validation and malformed requests, each carrying the canaries.
    body = {"secret": secret, "passphrase": passphrase}
    answers += [
        await http.post("/generate", json={**body, "secret": secret + "x" * 70_000}),
        await http.post("/generate", json={**body, "passphrase": passphrase * 100}),
        await http.post("/generate", json={**body, "ttl_seconds": secret}),
        await http.post("/generate", json={**body, "ttl_seconds": 5}),
        await http.post("/generate", json={**body, "note": secret}),
        await http.post("/generate", json={"secret": [secret], "passphrase": {"p": passphrase}}),
        await http.post("/generate", json={"secret": secret}),
        await http.post(f"/secrets/{stored}", json={"passphrase": [wrong], "extra": secret}),
        await http.post(
            "/generate",
            content=json.dumps(body).encode()[:-1],
            headers={"content-type": "application/json"},
        ),
        await http.post(
            "/generate",
            content=json.dumps(body).encode().replace(b'",', b'\xff",', 1),
            headers={"content-type": "application/json"},
        ),
        await http.post("/generate", content=json.dumps(body).encode()),
        await http.post("/generate", data=body),
        await http.post("/generate", json={**body, "secret": secret + "x" * 500_000}),
        await http.get(f"/secrets/{secret * 300}", params={"passphrase": passphrase}),
        await http.get(f"/secrets/{stored}", params={"passphrase": passphrase * 100}),
        await http.put(f"/secrets/{stored}", params={"passphrase": passphrase}),
        await http.get(f"/nowhere/{stored}/{secret}", params={"passphrase": passphrase}),
    ]

    # Refusals added by the review: HEAD on the reveal, a passphrase that is not UTF-8 or is
    # repeated, a syntax error right at a value, repeated JSON keys, too many header fields.
    json_type = {"content-type": "application/json"}
    repeated = {"secret": secret, "passphrase": passphrase}
    answers += [
        await http.head(f"/secrets/{stored}", params={"passphrase": passphrase}),
        await http.get(f"/secrets/{stored}?passphrase={passphrase}%ff"),
        await http.delete(f"/secrets/{stored}?passphrase={passphrase}&passphrase={wrong}"),
        await http.post(
            "/graphql",
            json={"query": f'mutation {{ createSecret(secret: "{secret}" "{passphrase}") }}'},
        ),
        await http.post(
            "/generate",
            content=(json.dumps(repeated)[:-1] + f', "secret": "{wrong}"}}').encode(),
            headers=json_type,
        ),
        await http.post(
            "/graphql",
            content=f'{{"query": "{GRAPHQL_CREATE}", "variables": {{"secret": "{secret}", '
            f'"passphrase": "{passphrase}", "passphrase": "{wrong}"}}}}'.encode(),
            headers=json_type,
        ),
        await http.get("/healthz", headers={f"x-canary-{n}": secret for n in range(120)}),
    ]
    return answers


def assert_no_canary_in_answers(answers: list[httpx.Response], canaries: Canaries) -> None:
    for answer in answers:
        assert answer.status_code < 500, answer.text
        # Headers too: a redirect's Location would repeat the path and the query string.
        leaked = canaries.found_in(answer.text + repr(list(answer.headers.items())))
        assert not leaked, (answer.request.method, answer.status_code, leaked)


async def assert_no_canary_in_database(database_url: str, canaries: Canaries) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            metadata = MetaData()
            await connection.run_sync(metadata.reflect)
            assert "secrets" in metadata.tables
            cells = 0
            for table in metadata.sorted_tables:
                for row in (await connection.execute(select(table))).all():
                    for column, value in zip(table.columns, row, strict=True):
                        cells += 1
                        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                        leaked = canaries.found_in(text)
                        assert not leaked, (table.name, column.name, leaked)
            assert cells > 0
    finally:
        await engine.dispose()


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), repr(vars(record))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_log_records_hold_no_secret(
    client: httpx.AsyncClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    canaries = Canaries.fresh()
    with caplog.at_level(logging.DEBUG):
        answers = await exercise(client, canaries)
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]

    assert_no_canary_in_answers(answers, canaries)
    assert any(record.name == "api.access" for record in records)
    for record in records:
        leaked = canaries.found_in(_record_text(record))
        assert not leaked, (record.name, record.getMessage(), leaked)
    await assert_no_canary_in_database(database_url, canaries)
    hashes = [r.getMessage() for r in records if PASSPHRASE_HASH_PREFIX in _record_text(r)]
    assert not hashes, hashes[:1]


async def test_fastapi_telemetry_records_no_span(client: httpx.AsyncClient) -> None:
    """FastAPI's own OpenTelemetry spans would hold `url.query`: the GET passphrase.

    Even with a tracer provider configured for the whole process, the service records none.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        created = await client.post("/generate", json={"secret": "s", "passphrase": "canary-otel"})
        key = created.json()["secret_key"]
        revealed = await client.get(f"/secrets/{key}", params={"passphrase": "canary-otel"})
        assert revealed.status_code == 200
        assert await client.get("/secrets/nowhere", params={"passphrase": "x"})
        assert exporter.get_finished_spans() == ()
    finally:
        provider.shutdown()
