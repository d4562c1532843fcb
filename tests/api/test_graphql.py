"""The GraphQL contract over HTTP, on both backends, using the committed example operations."""

from typing import Any

import httpx
import pytest

from api.gql.error_responses import redact_values
from api.gql.schema import build_schema
from api.settings import Settings
from harness import ROOT

CONTRACT = ROOT / "graphql"
OPERATIONS = {path.stem: path.read_text() for path in (CONTRACT / "operations").glob("*.graphql")}


async def run(client: httpx.AsyncClient, operation: str, **variables: Any) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": OPERATIONS[operation], "variables": variables}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


async def create(client: httpx.AsyncClient, secret: str = "my_secret") -> str:
    data = await run(client, "createSecret", secret=secret, passphrase="my_passphrase")
    assert data["createSecret"]["__typename"] == "CreatedSecret"
    return str(data["createSecret"]["secretKey"])


def test_sdl_matches_committed_contract() -> None:
    committed = (CONTRACT / "schema.graphql").read_text()
    assert build_schema(Settings.model_construct()).as_str() + "\n" == committed, (
        "graphql/schema.graphql is stale: run scripts/export-schema"
    )


def test_every_operation_is_exercised() -> None:
    assert set(OPERATIONS) == {
        "createSecret",
        "revealSecret",
        "burnSecret",
        "limits",
        "receipt",
        "revokeSecret",
    }


async def test_create_then_reveal_once(client: httpx.AsyncClient) -> None:
    data = await run(
        client, "createSecret", secret="my_secret", passphrase="my_passphrase", ttlSeconds=3600
    )
    created = data["createSecret"]
    assert created["__typename"] == "CreatedSecret"
    assert len(created["secretKey"]) == 32
    assert created["expiresAt"].endswith("Z")
    first = await run(
        client, "revealSecret", secretKey=created["secretKey"], passphrase="my_passphrase"
    )
    assert first["revealSecret"] == {"__typename": "RevealedSecret", "secret": "my_secret"}
    second = await run(
        client, "revealSecret", secretKey=created["secretKey"], passphrase="my_passphrase"
    )
    assert second["revealSecret"] == {"__typename": "SecretNotFound", "message": "Secret not found"}


async def test_rest_and_graphql_share_the_store(client: httpx.AsyncClient) -> None:
    key = await create(client)
    response = await client.post(f"/secrets/{key}", json={"passphrase": "my_passphrase"})
    assert response.json() == {"secret": "my_secret"}
    rest = await client.post("/generate", json={"secret": "from rest", "passphrase": "pw"})
    data = await run(client, "revealSecret", secretKey=rest.json()["secret_key"], passphrase="pw")
    assert data["revealSecret"]["secret"] == "from rest"


async def test_wrong_passphrase_then_right(client: httpx.AsyncClient) -> None:
    key = await create(client)
    wrong = await run(client, "revealSecret", secretKey=key, passphrase="wrong")
    assert wrong["revealSecret"]["__typename"] == "SecretNotFound"
    right = await run(client, "revealSecret", secretKey=key, passphrase="my_passphrase")
    assert right["revealSecret"]["secret"] == "my_secret"


async def test_burn(client: httpx.AsyncClient) -> None:
    key = await create(client)
    burned = await run(client, "burnSecret", secretKey=key, passphrase="my_passphrase")
    assert burned["burnSecret"] == {"__typename": "BurnedSecret", "secretKey": key}
    again = await run(client, "burnSecret", secretKey=key, passphrase="my_passphrase")
    assert again["burnSecret"]["__typename"] == "SecretNotFound"
    reveal = await run(client, "revealSecret", secretKey=key, passphrase="my_passphrase")
    assert reveal["revealSecret"]["__typename"] == "SecretNotFound"


async def test_not_found_answers_are_identical(client: httpx.AsyncClient) -> None:
    key = await create(client)
    answers = [
        await run(client, "revealSecret", secretKey=key, passphrase="wrong"),
        await run(client, "revealSecret", secretKey="0" * 32, passphrase="x"),
        await run(client, "revealSecret", secretKey="not a key", passphrase="x"),
    ]
    assert all(a == answers[0] for a in answers)
    # A passphrase over the limit is invalid input, as on REST, and claims no attempt.
    too_long = await run(client, "revealSecret", secretKey=key, passphrase="p" * 5000)
    assert too_long["revealSecret"]["__typename"] == "InvalidInput"
    right = await run(client, "revealSecret", secretKey=key, passphrase="my_passphrase")
    assert right["revealSecret"]["__typename"] == "RevealedSecret"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"secret": "", "passphrase": "p"}, "secret"),
        ({"secret": "s", "passphrase": ""}, "passphrase"),
        ({"secret": "s" * 65_537, "passphrase": "p"}, "secret"),
        ({"secret": "s", "passphrase": "p" * 1025}, "passphrase"),
        ({"secret": "s", "passphrase": "p", "ttlSeconds": 5}, "ttlSeconds"),
    ],
)
async def test_invalid_input(
    client: httpx.AsyncClient, variables: dict[str, Any], field: str
) -> None:
    data = await run(client, "createSecret", **variables)
    result = data["createSecret"]
    assert result["__typename"] == "InvalidInput"
    assert result["field"] == field
    assert "s" * 20 not in result["message"]


async def test_limits_reflect_settings(client: httpx.AsyncClient, configure: Any) -> None:
    configure(MAX_FAILED_ATTEMPTS="3")
    data = await run(client, "limits")
    assert data["limits"] == {
        "maxSecretBytes": 65536,
        "maxPassphraseLength": 1024,
        "minTtlSeconds": 60,
        "maxTtlSeconds": 2592000,
        "defaultTtlSeconds": 604800,
        "maxFailedAttempts": 3,
        "receiptRetentionSeconds": 604800,
    }


async def test_receipt_and_revoke_operations(client: httpx.AsyncClient) -> None:
    created = (await run(client, "createSecret", secret="s", passphrase="p"))["createSecret"]
    receipt_key = created["receiptKey"]
    pending = (await run(client, "receipt", receiptKey=receipt_key))["receipt"]
    assert pending["status"] == "PENDING"
    assert pending["closedAt"] is None
    revoked = (await run(client, "revokeSecret", receiptKey=receipt_key))["revokeSecret"]
    assert revoked["status"] == "REVOKED"
    assert revoked["closedAt"].endswith("Z")
    gone = await run(client, "revealSecret", secretKey=created["secretKey"], passphrase="p")
    assert gone["revealSecret"]["__typename"] == "SecretNotFound"
    missing = await run(client, "receipt", receiptKey=created["secretKey"])
    assert missing["receipt"] == {"__typename": "ReceiptNotFound", "message": "Receipt not found"}


async def test_mutation_over_get_is_refused(client: httpx.AsyncClient) -> None:
    query = 'mutation { createSecret(secret: "s", passphrase: "p") { __typename } }'
    response = await client.get("/graphql", params={"query": query})
    assert response.status_code in {400, 405}


async def test_query_over_get_works(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ limits { maxFailedAttempts } }"})
    assert response.status_code == 200
    assert response.json()["data"]["limits"]["maxFailedAttempts"] == 5


async def test_graphiql_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_coercion_errors_do_not_quote_values(client: httpx.AsyncClient) -> None:
    canary = 424242987
    response = await client.post(
        "/graphql",
        json={
            "query": OPERATIONS["createSecret"],
            "variables": {"secret": canary, "passphrase": "x", "ttlSeconds": "canary-ttl"},
        },
    )
    body = response.json()
    assert body["errors"]
    assert str(canary) not in response.text
    assert "canary-ttl" not in response.text
    assert "$secret" in response.text


async def test_inline_literal_errors_do_not_quote_values(client: httpx.AsyncClient) -> None:
    query = 'mutation { createSecret(secret: 987654321, passphrase: "x") { __typename } }'
    response = await client.post("/graphql", json={"query": query})
    assert response.json()["errors"]
    assert "987654321" not in response.text


REDACTIONS = [
    (
        "Variable '$s' got invalid value 123; String cannot represent a non string value: 123",
        "Variable '$s' got invalid value; String cannot represent a non string value",
    ),
    (
        "Variable '$s' has invalid value: String cannot represent a non string value: 123",
        "Variable '$s' has invalid value: String cannot represent a non string value",
    ),
    (
        "Expected value of type 'Int', found \"abc\"; Int cannot represent non-integer value",
        "Expected value of type 'Int'; Int cannot represent non-integer value",
    ),
    ("Unknown argument 'x' on field 'Mutation.createSecret'.", None),
]


@pytest.mark.parametrize(("message", "expected"), REDACTIONS)
def test_redact_values(message: str, expected: str | None) -> None:
    assert redact_values(message) == (expected or message)


REVEAL_BESIDE = {
    "another mutation": 'r: revealSecret(secretKey: "{key}", passphrase: "my_passphrase") '
    '{{ __typename }} c: createSecret(secret: "s", passphrase: "p") {{ __typename }}',
    "a second reveal": 'a: revealSecret(secretKey: "{key}", passphrase: "my_passphrase") '
    '{{ __typename }} b: revealSecret(secretKey: "{key}", passphrase: "other") {{ __typename }}',
    "a fragment": '...R c: burnSecret(secretKey: "{key}", passphrase: "x") {{ __typename }} }} '
    'fragment R on Mutation {{ revealSecret(secretKey: "{key}", passphrase: "my_passphrase") '
    "{{ __typename }}",
}


@pytest.mark.parametrize("beside", sorted(REVEAL_BESIDE))
async def test_a_reveal_stands_alone_in_its_operation(
    client: httpx.AsyncClient, beside: str
) -> None:
    """Another field's error would turn a revealed secret's answer into `data: null`."""
    key = await create(client)
    query = "mutation { " + REVEAL_BESIDE[beside].format(key=key) + " }"
    response = await client.post("/graphql", json={"query": query})
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("revealSecret must be the only field")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    # Nothing ran: the secret is still there for a reveal on its own.
    data = await run(client, "revealSecret", secretKey=key, passphrase="my_passphrase")
    assert data["revealSecret"] == {"__typename": "RevealedSecret", "secret": "my_secret"}


async def test_a_reveal_may_ask_for_typename_beside_it(client: httpx.AsyncClient) -> None:
    key = await create(client)
    query = (
        f'mutation {{ __typename revealSecret(secretKey: "{key}", passphrase: "my_passphrase")'
        " { ... on RevealedSecret { secret } } }"
    )
    body = (await client.post("/graphql", json={"query": query})).json()
    assert body["data"] == {"__typename": "Mutation", "revealSecret": {"secret": "my_secret"}}
