"""GraphQL's own error messages: no quoted value, and no schema hints once introspection is off.

graphql-core's syntax errors quote the token they stopped at (`found String 'hunter2'`),
which may be a secret typed inline; its validation errors suggest near names ("Did you
mean 'revealSecret'?"), which would describe the schema to a client refused introspection.
"""

from typing import Any

import httpx
import pytest

CANARY = "canary-gql-7e1f"
NAME_CANARY = "canaryName7e1f"

# Documents that stop, for a syntax error, right at a value holding the canary.
SYNTAX_ERRORS = [
    f'mutation {{ revealSecret(secretKey: "k", passphrase: "p" "{CANARY}") {{ __typename }} }}',
    f'{{ "{CANARY}" }}',
    f'mutation {{ revealSecret(secretKey: "k" passphrase: """x""" """{CANARY}""") }}',
    f"{{ limits }} {NAME_CANARY}",
    "{ limits(x: 1 31415926535) }",
    "{ limits(x: 1 2.718281828) }",
    '{ limits(x: "xyzz\\q") }',
    '{ limits(x: "\\u{DEADBEEF9") }',
    '{ limits(x: "\\uD83Dxyzz") }',
    "{ limits(x: 31415926535e~) }",
    "{ limits(x: .31415926535) }",
    "{ limits(x: 1 ~) }",
]


@pytest.mark.parametrize("document", SYNTAX_ERRORS)
async def test_syntax_errors_quote_no_value(client: httpx.AsyncClient, document: str) -> None:
    response = await client.post("/graphql", json={"query": document})
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    message = error["message"]
    assert message.startswith("Syntax Error: ")
    quoted = (CANARY, NAME_CANARY, "31415926535", "2.718281828", "D83D", "DEAD", "xyz", "~", "\\")
    for secretish in quoted:
        assert secretish not in message, message


async def test_syntax_errors_still_say_where_and_what(client: httpx.AsyncClient) -> None:
    document = f'mutation {{ revealSecret(secretKey: "k", passphrase: "p" "{CANARY}") }}'
    (error,) = (await client.post("/graphql", json={"query": document})).json()["errors"]
    assert error["message"] == "Syntax Error: Expected Name, found String."
    assert error["locations"] == [{"line": 1, "column": document.index(f'"{CANARY}"') + 1}]


NEAR_MISSES = [
    'mutation { revealSecre(secretKey: "k", passphrase: "p") { __typename } }',
    'mutation { revealSecret(secretKey: "k", passphrase: "p", passphras: "p") { __typename } }',
    'query { receipt(receiptKey: "k") { ... on Receip { status } } }',
    'mutation { revealSecret(secretKey: "k", passphrase: "p") }',
]


@pytest.mark.parametrize("document", NEAR_MISSES)
async def test_no_suggestions_without_introspection(
    client: httpx.AsyncClient, configure: Any, document: str
) -> None:
    response = await client.post("/graphql", json={"query": document})
    assert "Did you mean" in response.json()["errors"][0]["message"]

    configure(GRAPHQL_INTROSPECTION="false")
    response = await client.post("/graphql", json={"query": document})
    for error in response.json()["errors"]:
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Did you mean" not in error["message"], error["message"]
        assert "revokeSecret" not in error["message"]
        assert "passphrase'" not in error["message"]
