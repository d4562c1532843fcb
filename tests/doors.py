"""The two doors driven alike: each answer read into an `Outcome` that means the same on both.

Used by the cross-door table (`tests/api/test_doors_agree.py`) and the receipt tests.
"""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import httpx


@dataclass(frozen=True)
class Outcome:
    """What an answer means, whichever door gave it. `None` in an expected row: not pinned."""

    kind: str
    field: str | None = None
    message: str | None = None
    retry_after: int | None = None
    value: str | None = None  # the secret, a created secret's key, or a receipt's status
    receipt_key: str | None = None
    receipt: tuple[Any, ...] | None = None  # created, expires, closed, failed attempts
    public_id: str | None = None  # a created secret's, or a receipt's
    notification: tuple[Any, ...] | None = None  # a receipt's notify_url and its status

    def matches(self, actual: "Outcome") -> bool:
        """Whether `actual` agrees with every part this expectation pins."""
        return all(
            expected is None or expected == getattr(actual, name)
            for name, expected in self.__dict__.items()
        )


NOT_FOUND = Outcome("not_found", message="Secret not found")
RECEIPT_NOT_FOUND = Outcome("not_found", message="Receipt not found")


def invalid(name: str | None, message: str | None = None) -> Outcome:
    """Invalid input on `name` (snake_case), with the service's message."""
    return Outcome("invalid", field=name, message=message)


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


def json_body(payload: object) -> bytes:
    # ensure_ascii keeps lone surrogates as escapes, as a client in another language sends them.
    return json.dumps(payload, ensure_ascii=True).encode()


JSON = {"content-type": "application/json"}


def _with_token(token: str | None) -> dict[str, str]:
    return JSON if token is None else {**JSON, "authorization": f"Bearer {token}"}


PASSPHRASE = "canary-passphrase-d00r"
SECRET = "canary-secret-d00r"


# -- The two doors, read into outcomes ----------------------------------------------------------


def _rest_outcome(response: httpx.Response, success: str) -> Outcome:
    if response.status_code in (200, 204):
        body = response.json() if response.content else {}
        if success == "receipt":
            return Outcome(
                "receipt",
                value=body["status"],
                receipt=(
                    body["created_at"],
                    body["expires_at"],
                    body["closed_at"],
                    body["failed_attempts"],
                ),
                public_id=body["public_id"],
                notification=(body["notify_url"], body["notification"]),
            )
        return Outcome(
            success,
            value=body.get("secret") or body.get("secret_key"),
            receipt_key=body.get("receipt_key"),
            public_id=body.get("public_id"),
        )
    body = response.json()
    retry_after = response.headers.get("retry-after")
    if response.status_code == 404:
        return Outcome("not_found", message=body["detail"])
    if response.status_code == 422:
        (error,) = body["detail"]
        return Outcome("invalid", field=str(error["loc"][-1]), message=error["msg"])
    if response.status_code == 401:
        # The challenge rides in `value`, so the doors must agree on it too.
        return Outcome(
            "unauthenticated", message=body["detail"], value=response.headers["www-authenticate"]
        )
    if response.status_code == 507:
        return Outcome("storage_full", message=body["detail"])
    if response.status_code in (429, 503):
        kind = "rate_limited" if response.status_code == 429 else "unavailable"
        assert retry_after is not None
        return Outcome(kind, message=body["detail"], retry_after=int(retry_after))
    raise AssertionError(f"unexpected REST answer {response.status_code}: {response.text}")


class Rest:
    """The REST door."""

    name = "rest"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, *, token: str | None = None, **arguments: Any) -> Outcome:
        response = await self.client.post(
            "/generate", content=json_body(arguments), headers=_with_token(token)
        )
        return _rest_outcome(response, "created")

    async def reveal(self, key: str, passphrase: str) -> Outcome:
        body = json_body({"passphrase": passphrase})
        response = await self.client.post(f"/secrets/{key}", content=body, headers=JSON)
        return _rest_outcome(response, "revealed")

    async def burn(self, key: str, passphrase: str) -> Outcome:
        body = json_body({"passphrase": passphrase})
        response = await self.client.request(
            "DELETE", f"/secrets/{key}", content=body, headers=JSON
        )
        return _rest_outcome(response, "burned")

    async def receipt(self, receipt_key: str) -> Outcome:
        return _rest_outcome(await self.client.get(f"/receipts/{receipt_key}"), "receipt")

    async def revoke(self, receipt_key: str) -> Outcome:
        return _rest_outcome(await self.client.delete(f"/receipts/{receipt_key}"), "receipt")


def query_bytes(value: str) -> bytes:
    """The bytes a client in another language puts in a URL for `value`.

    A lone surrogate (U+D800) is UTF-8-encoded as it stands (`%ED%A0%80`); U+DC80 to U+DCFF
    carry single bytes that are not UTF-8 at all (U+DCFF is `%FF`), as Python's
    `surrogateescape` does. Sent through a JSON door, both are lone surrogates.
    """
    return b"".join(
        bytes([ord(char) - 0xDC00])
        if "\udc80" <= char <= "\udcff"
        else char.encode("utf-8", "surrogatepass")
        for char in value
    )


class RestQuery(Rest):
    """The REST door's query-string forms, kept from the original API.

    `?passphrase=…` on `GET` (reveal) and `DELETE` (burn).
    """

    name = "rest-query"

    def _url(self, key: str, passphrase: str) -> str:
        return f"/secrets/{key}?passphrase={quote_from_bytes(query_bytes(passphrase), safe='')}"

    async def reveal(self, key: str, passphrase: str) -> Outcome:
        return _rest_outcome(await self.client.get(self._url(key, passphrase)), "revealed")

    async def burn(self, key: str, passphrase: str) -> Outcome:
        return _rest_outcome(await self.client.delete(self._url(key, passphrase)), "burned")


_RECEIPT_FIELDS = (
    " __typename ... on Receipt { status createdAt expiresAt closedAt failedAttempts"
    " publicId notifyUrl notification }"
    " ... on ReceiptNotFound { message }"
)
_OPERATIONS = {
    "createSecret": (
        "mutation($secret: String!, $passphrase: String!, $ttlSeconds: Int, $notifyUrl: String) {"
        " createSecret(secret: $secret, passphrase: $passphrase, ttlSeconds: $ttlSeconds,"
        " notifyUrl: $notifyUrl) {"
        " __typename ... on CreatedSecret { secretKey receiptKey publicId }"
        " ... on InvalidInput { field message } } }"
    ),
    "receipt": "query($receiptKey: String!) { receipt(receiptKey: $receiptKey) {"
    + _RECEIPT_FIELDS
    + " } }",
    "revokeSecret": "mutation($receiptKey: String!) { revokeSecret(receiptKey: $receiptKey) {"
    + _RECEIPT_FIELDS
    + " } }",
    "revealSecret": (
        "mutation($secretKey: String!, $passphrase: String!) {"
        " revealSecret(secretKey: $secretKey, passphrase: $passphrase) {"
        " __typename ... on RevealedSecret { secret } ... on SecretNotFound { message }"
        " ... on InvalidInput { field message } } }"
    ),
    "burnSecret": (
        "mutation($secretKey: String!, $passphrase: String!) {"
        " burnSecret(secretKey: $secretKey, passphrase: $passphrase) {"
        " __typename ... on BurnedSecret { secretKey } ... on SecretNotFound { message }"
        " ... on InvalidInput { field message } } }"
    ),
}
_SUCCESS = {"CreatedSecret": "created", "RevealedSecret": "revealed", "BurnedSecret": "burned"}


class GraphQL:
    """The GraphQL door."""

    name = "graphql"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _run(
        self, operation: str, variables: dict[str, Any], token: str | None = None
    ) -> Outcome:
        body = json_body({"query": _OPERATIONS[operation], "variables": variables})
        response = await self.client.post("/graphql", content=body, headers=_with_token(token))
        payload = response.json()
        if payload.get("errors"):
            (error,) = payload["errors"]
            code = error["extensions"]["code"]
            retry_after = error["extensions"].get("retryAfterSeconds")
            if code == "BAD_USER_INPUT":  # the type system refused a variable
                return Outcome("invalid", message=error["message"])
            if code == "UNAUTHENTICATED":
                assert response.status_code == 401
                challenge = response.headers["www-authenticate"]
                return Outcome("unauthenticated", message=error["message"], value=challenge)
            if code == "STORAGE_QUOTA_REACHED":
                assert response.status_code == 507
                return Outcome("storage_full", message=error["message"])
            kinds = {"RATE_LIMITED": "rate_limited", "SERVICE_UNAVAILABLE": "unavailable"}
            assert code in kinds, payload
            expected_status = 429 if code == "RATE_LIMITED" else 503
            assert response.status_code == expected_status
            assert response.headers["retry-after"] == str(retry_after)
            return Outcome(kinds[code], message=error["message"], retry_after=retry_after)
        assert response.status_code == 200, response.text
        result = payload["data"][operation]
        typename = result["__typename"]
        if typename in _SUCCESS:
            value = result.get("secret") or result.get("secretKey")
            return Outcome(
                _SUCCESS[typename],
                value=value,
                receipt_key=result.get("receiptKey"),
                public_id=result.get("publicId"),
            )
        if typename == "Receipt":
            return Outcome(
                "receipt",
                value=result["status"].lower(),
                receipt=(
                    result["createdAt"],
                    result["expiresAt"],
                    result["closedAt"],
                    result["failedAttempts"],
                ),
                public_id=result["publicId"],
                notification=(
                    result["notifyUrl"],
                    result["notification"] and result["notification"].lower(),
                ),
            )
        if typename in ("SecretNotFound", "ReceiptNotFound"):
            return Outcome("not_found", message=result["message"])
        assert typename == "InvalidInput", payload
        return Outcome("invalid", field=_snake(result["field"]), message=result["message"])

    async def create(self, *, token: str | None = None, **arguments: Any) -> Outcome:
        names = {
            "secret": "secret",
            "passphrase": "passphrase",
            "ttl_seconds": "ttlSeconds",
            "notify_url": "notifyUrl",
        }
        return await self._run(
            "createSecret", {names[key]: value for key, value in arguments.items()}, token
        )

    async def reveal(self, key: str, passphrase: str) -> Outcome:
        return await self._run("revealSecret", {"secretKey": key, "passphrase": passphrase})

    async def burn(self, key: str, passphrase: str) -> Outcome:
        return await self._run("burnSecret", {"secretKey": key, "passphrase": passphrase})

    async def receipt(self, receipt_key: str) -> Outcome:
        return await self._run("receipt", {"receiptKey": receipt_key})

    async def revoke(self, receipt_key: str) -> Outcome:
        return await self._run("revokeSecret", {"receiptKey": receipt_key})


Door = Rest | RestQuery | GraphQL
