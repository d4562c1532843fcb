"""Limits and 422s: every rejection names the field and never echoes the value."""

import httpx
import pytest

CANARY_SECRET = "canary-secret-5f1d"
CANARY_PASSPHRASE = "canary-passphrase-77ab"


def assert_no_echo(response: httpx.Response) -> None:
    assert CANARY_SECRET not in response.text
    assert CANARY_PASSPHRASE not in response.text


def only_error(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert len(errors) == 1
    assert set(errors[0]) == {"type", "loc", "msg"}
    return dict(errors[0])


async def test_secret_over_byte_limit(client: httpx.AsyncClient, configure: object) -> None:
    configure(MAX_SECRET_BYTES="10")  # type: ignore[operator]
    # 4 characters but 12 bytes: the limit is in bytes of UTF-8.
    response = await client.post("/generate", json={"secret": "🔐🔐🔐", "passphrase": "p"})
    error = only_error(response)
    assert error["loc"] == ["body", "secret"]
    assert "10 bytes" in str(error["msg"])
    exactly = await client.post("/generate", json={"secret": "x" * 10, "passphrase": "p"})
    assert exactly.status_code == 200


async def test_secret_over_default_limit(client: httpx.AsyncClient) -> None:
    body = {"secret": CANARY_SECRET + "x" * 65_536, "passphrase": CANARY_PASSPHRASE}
    response = await client.post("/generate", json=body)
    error = only_error(response)
    assert error["loc"] == ["body", "secret"]
    assert "65536" in str(error["msg"])
    assert_no_echo(response)


async def test_passphrase_over_limit(client: httpx.AsyncClient) -> None:
    body = {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE + "p" * 1024}
    response = await client.post("/generate", json=body)
    error = only_error(response)
    assert error["loc"] == ["body", "passphrase"]
    assert "1024" in str(error["msg"])
    assert_no_echo(response)


async def test_passphrase_over_limit_on_reveal(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/secrets/{'a' * 32}", params={"passphrase": "p" * 1025})
    error = only_error(response)
    assert error["loc"] == ["query", "passphrase"]
    response = await client.post(f"/secrets/{'a' * 32}", json={"passphrase": "p" * 1025})
    assert only_error(response)["loc"] == ["body", "passphrase"]


@pytest.mark.parametrize("ttl", [0, 59, 2_592_001, -1])
async def test_ttl_out_of_bounds(client: httpx.AsyncClient, ttl: int) -> None:
    response = await client.post(
        "/generate", json={"secret": "s", "passphrase": "p", "ttl_seconds": ttl}
    )
    error = only_error(response)
    assert error["loc"] == ["body", "ttl_seconds"]
    assert "60" in str(error["msg"])
    assert "2592000" in str(error["msg"])


@pytest.mark.parametrize("ttl", [60, 2_592_000])
async def test_ttl_bounds_are_inclusive(client: httpx.AsyncClient, ttl: int) -> None:
    response = await client.post(
        "/generate", json={"secret": "s", "passphrase": "p", "ttl_seconds": ttl}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"passphrase": CANARY_PASSPHRASE}, "secret"),
        ({"secret": CANARY_SECRET}, "passphrase"),
        ({"secret": "", "passphrase": CANARY_PASSPHRASE}, "secret"),
        ({"secret": CANARY_SECRET, "passphrase": ""}, "passphrase"),
        ({"secret": None, "passphrase": CANARY_PASSPHRASE}, "secret"),
        ({"secret": 12345, "passphrase": CANARY_PASSPHRASE}, "secret"),
        ({"secret": [CANARY_SECRET], "passphrase": CANARY_PASSPHRASE}, "secret"),
        (
            {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE, "ttl_seconds": "soon"},
            "ttl_seconds",
        ),
        (
            {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE, "extra": CANARY_SECRET},
            "extra",
        ),
    ],
)
async def test_bad_bodies_name_the_field_without_echo(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/generate", json=body)
    error = only_error(response)
    assert error["loc"][-1] == field  # type: ignore[index]
    assert_no_echo(response)


async def test_missing_passphrase_query_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/secrets/{'a' * 32}")
    assert only_error(response)["loc"] == ["query", "passphrase"]
    # A burn takes it in the body (or, as the original API did, in the query string).
    response = await client.delete(f"/secrets/{'a' * 32}")
    assert only_error(response)["loc"] == ["body", "passphrase"]


async def test_lone_surrogate_secret_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/generate",
        content=b'{"secret": "\\ud800", "passphrase": "p"}',
        headers={"content-type": "application/json"},
    )
    assert only_error(response)["loc"] == ["body", "secret"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("passphrase=%ff%fe", "passphrase must be valid Unicode text"),
        ("passphrase=%ed%a0%80", "passphrase must be valid Unicode text"),
        ("passphrase=ok%c3", "passphrase must be valid Unicode text"),
        (f"passphrase={CANARY_PASSPHRASE}&passphrase=p", "passphrase must be given once"),
        (f"pass%70hrase={CANARY_PASSPHRASE}&passphrase=p", "passphrase must be given once"),
    ],
)
async def test_query_passphrase_is_read_from_its_bytes(
    client: httpx.AsyncClient, method: str, query: str, message: str
) -> None:
    """Not UTF-8 or repeated: 422 in the service's words, as a JSON body would get."""
    response = await client.request(method, f"/secrets/{'a' * 32}?{query}")
    error = only_error(response)
    assert error["loc"] == ["query", "passphrase"]
    assert error["msg"] == message
    assert_no_echo(response)


async def test_query_passphrase_in_utf8_is_taken(client: httpx.AsyncClient) -> None:
    created = await client.post("/generate", json={"secret": "s", "passphrase": "pässe wört"})
    key = created.json()["secret_key"]
    response = await client.get(f"/secrets/{key}?passphrase=p%C3%A4sse+w%C3%B6rt")
    assert response.json() == {"secret": "s"}
