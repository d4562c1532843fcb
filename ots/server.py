"""The client's calls to the service's REST API, and what each refusal means to a person."""

import os
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from ots import __version__

# Exit codes, documented in `ots --help` and the README.
OK, REFUSED, USAGE, UNAVAILABLE, UNAUTHENTICATED, QUOTA = 0, 1, 2, 3, 4, 5
TIMEOUT_SECONDS = 30.0


class ClientError(Exception):
    """A failure to tell the user in words, with the exit code it ends with."""

    def __init__(self, message: str, exit_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Created:
    """What the server answered to a create."""

    secret_key: str
    receipt_key: str
    expires_at: str
    public_id: str | None  # what notifications name the receipt by (older servers: none)


class Service:
    """One server, spoken to over REST. Keys travel in paths, never in query strings."""

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        headers = {"user-agent": f"ots/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        hooks = {"response": [_debug_line]} if os.environ.get("OTS_DEBUG") == "1" else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
            event_hooks=hooks,
        )

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def create(
        self,
        *,
        secret: str,
        passphrase: str,
        ttl_seconds: int | None,
        notify_url: str | None = None,
    ) -> Created:
        """Store `secret` (an envelope, or plain text) behind `passphrase`.

        `notify_url` is told once when the secret is revealed, burned, revoked or expires.
        """
        body: dict[str, Any] = {"secret": secret, "passphrase": passphrase}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        if notify_url is not None:
            body["notify_url"] = notify_url
        answer = self._call("POST", "/generate", body)
        return Created(
            answer["secret_key"],
            answer["receipt_key"],
            answer["expires_at"],
            answer.get("public_id"),
        )

    def reveal(self, secret_key: str, passphrase: str) -> str:
        """Return the stored secret; the server deletes it as it answers."""
        answer = self._call("POST", f"/secrets/{secret_key}", {"passphrase": passphrase})
        return str(answer["secret"])

    def receipt(self, receipt_key: str) -> dict[str, Any]:
        """Return the receipt: status, times, failed attempts."""
        return self._call("GET", f"/receipts/{receipt_key}")

    def revoke(self, receipt_key: str) -> dict[str, Any]:
        """Destroy the secret if it is still pending; return the receipt."""
        return self._call("DELETE", f"/receipts/{receipt_key}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise ClientError("the server did not answer in time", UNAVAILABLE) from None
        except httpx.HTTPError as error:
            raise ClientError(
                f"cannot reach the server at {self._http.base_url} ({type(error).__name__})",
                UNAVAILABLE,
            ) from None
        if response.status_code != 200:
            raise _refusal(response, path)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ClientError("the server's answer is not the service's JSON", UNAVAILABLE)
        return answer


def _refusal(response: httpx.Response, path: str) -> ClientError:
    status = response.status_code
    retry_after = _retry_after(response)
    if status == 404:
        if path.startswith("/secrets/"):
            message = (
                "the secret cannot be revealed: the passphrase is wrong, or it was already "
                "read, has expired or was revoked"
            )
        elif path.startswith("/receipts/"):
            message = "no such receipt (receipts are purged some days after the secret ends)"
        else:
            message = "this server does not offer the one-time secret API here"
        return ClientError(message, REFUSED)
    if status == 401:
        return ClientError(
            "the server needs a creator token, and refused the one given (or none was): "
            "set OTS_TOKEN or use --token-file",
            UNAUTHENTICATED,
        )
    if status == 507:
        return ClientError("the server has no room for more secrets right now", QUOTA)
    if status == 429:
        wait = f": retry in {retry_after:g} s" if retry_after is not None else ""
        return ClientError(f"too many requests from here{wait}", REFUSED, retry_after)
    if status in {502, 503, 504}:
        return ClientError(
            f"the server is busy or unavailable (HTTP {status})", UNAVAILABLE, retry_after
        )
    if status in {413, 422}:
        return ClientError(f"the server refused the request: {_detail(response)}", REFUSED)
    return ClientError(f"the server refused the request (HTTP {status})", REFUSED)


def _detail(response: httpx.Response) -> str:
    # The service's messages name limits and fields, never the values sent.
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", "")) for item in detail if isinstance(item, dict))
    return f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers["retry-after"]), 0.0)
    except (KeyError, ValueError):
        return None


def _debug_line(response: httpx.Response) -> None:
    # Only the first segment of the path: the rest is a key. Bodies are never shown.
    request = response.request
    first = request.url.path.split("/")[1]
    shown = f"/{first}/…" if request.url.path.count("/") > 1 else f"/{first}"
    print(f"ots: {request.method} {shown} -> {response.status_code}", file=sys.stderr)
