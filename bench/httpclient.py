"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

The load generator shares two cores with the servers it measures, so it must cost as little
CPU per request as possible: this client writes one request, reads the head up to the blank
line and then exactly `Content-Length` bytes. It understands only what uvicorn sends back
(no chunked bodies), and says so loudly if that ever changes.
"""

import asyncio
import contextlib
from collections.abc import Awaitable

_closing: set["asyncio.Task[None]"] = set()


async def _quietly(closed: Awaitable[None]) -> None:
    # Awaiting the close retrieves a reset's exception, which asyncio would otherwise log.
    with contextlib.suppress(Exception):
        await closed


class ProtocolError(Exception):
    """The server answered something this small client does not parse."""


class Connection:
    """One persistent connection; requests on it run one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # The last response's Retry-After in seconds, if it had one.
        self.retry_after: float | None = None

    async def request(
        self, method: str, target: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send one request and return the status code and the body.

        Like any HTTP client, it retries once on a fresh connection when a kept-alive one
        turns out to have been closed by the server (uvicorn drops idle ones after 5 s).
        """
        reused = self._writer is not None
        try:
            return await self._exchange(method, target, body)
        except asyncio.IncompleteReadError as exc:
            if not reused or exc.partial:
                raise
        except (ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        return await self._exchange(method, target, body)

    async def _exchange(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode("ascii") + b"\r\n" + (body or b""))
        try:
            response_head = await reader.readuntil(b"\r\n\r\n")
            status, length, close, self.retry_after = _parse_head(response_head)
            content = await reader.readexactly(length) if length else b""
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self._writer is not None:
            self._writer.close()
            task = asyncio.ensure_future(_quietly(self._writer.wait_closed()))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        self._reader = self._writer = None


def _parse_head(head: bytes) -> tuple[int, int, bool, float | None]:
    lines = head.split(b"\r\n")
    status = int(lines[0][9:12])
    length: int | None = None
    close = False
    retry_after: float | None = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ProtocolError("chunked responses are not supported")
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"retry-after":
            # Seconds only: the service never sends an HTTP date. Anything else reads as
            # missing, which the overload load generator counts as an error.
            with contextlib.suppress(ValueError):
                retry_after = float(value)
    if length is None:
        if status in (204, 304) or 100 <= status < 200:
            return status, 0, close, retry_after
        raise ProtocolError(f"response {status} has no Content-Length")
    return status, length, close, retry_after
