"""Real webhook receivers for the notification tests: HTTP servers on 127.0.0.1.

A `Receiver` records every request it gets and answers from a script: the statuses of its
first answers (`answers`), then 204. `stall_first` keeps the first request waiting, so a
test can act while a delivery is in flight. `wait_for` waits on the requests themselves,
under the suite's patience, never on a guessed delay.
"""

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks

from tests.clocks import PATIENCE_SECONDS


@dataclass(frozen=True)
class Delivery:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def payload(self) -> dict[str, Any]:
        """The JSON body."""
        document: dict[str, Any] = json.loads(self.body)
        return document

    def verified(self, signing_secret: str) -> dict[str, Any]:
        """The body, after the `standardwebhooks` library checked its signature."""
        document: dict[str, Any] = standardwebhooks.Webhook(signing_secret).verify(
            self.body, self.headers
        )
        return document


@dataclass
class Receiver:
    """A receiver on 127.0.0.1; see the module's docstring."""

    port: int = 0
    answers: list[int] = field(default_factory=list)
    stall_first: bool = False
    deliveries: list[Delivery] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str = "/hook") -> str:
        """The URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, delivery: Delivery) -> tuple[int, bool]:
        """Keep `delivery`; return the status to answer and whether to stall first."""
        with self._changed:
            self.deliveries.append(delivery)
            number = len(self.deliveries)
            self._changed.notify_all()
        status = self.answers[number - 1] if number <= len(self.answers) else 204
        return status, self.stall_first and number == 1

    def wait_for(self, count: int, timeout: float = PATIENCE_SECONDS) -> list[Delivery]:
        """Wait until `count` requests have come; return them all."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout)
            assert arrived, f"{len(self.deliveries)} of {count} deliveries came"
            return list(self.deliveries)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, stall = receiver.record(Delivery(self.path, headers, body))
        if stall:
            receiver.stalled.set()
            receiver.release.wait(PATIENCE_SECONDS)
        with contextlib.suppress(OSError):  # the sender may have given up meanwhile
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()


@contextlib.contextmanager
def receiving(
    answers: Sequence[int] = (), *, stall_first: bool = False, port: int = 0
) -> Iterator[Receiver]:
    """Run a receiver for the block (on `port`, or a free one)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    receiver = Receiver(
        port=server.server_address[1], answers=list(answers), stall_first=stall_first
    )
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
