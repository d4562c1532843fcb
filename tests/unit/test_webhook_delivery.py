"""Webhook delivery (api/webhooks): signatures, the destination policy, delivery, backoff, body.

Deliveries go to real HTTP servers on 127.0.0.1 that this file starts (`Receiver`). Where a
test needs a name to resolve to an address this machine must not reach, it injects a
resolver, and a `DialRecorder` underneath records every address the sender dials and dials
only loopback, so no test ever sends a packet off the machine.
"""

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import inspect
import json
import random
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
import standardwebhooks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.webhooks import (
    DeliveryOutcome,
    DeliveryTimeouts,
    DestinationPolicy,
    Resolver,
    WebhookEvent,
    WebhookSender,
    address_refusal,
    check_url,
    delay_before_attempt,
    deliver,
    new_signing_secret,
    retry_window_closed,
    signature_headers,
    system_resolver,
    webhook_body,
)
from api.webhooks.network import Streams, open_streams
from tests.clocks import PATIENCE_SECONDS

IPAddress = IPv4Address | IPv6Address

# A globally routable address the DialRecorder refuses to dial: it stands for "a public
# receiver" and is never contacted.
PUBLIC = IPv4Address("93.184.215.14")
LOOPBACK = IPv4Address("127.0.0.1")
# Far more than the kernel's socket buffers hold, so a sender that stopped reading early
# makes the receiver's writes fail long before the end.
HUGE_BODY_BYTES = 1 << 30
# Generous for a loaded machine; the slow receiver never answers, so any value times out.
SHORT = DeliveryTimeouts(connect=10.0, read=0.5, write=10.0, total=30.0)


# --- Receivers ------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each request, answers by path."""

    host: str
    port: int
    scheme: str = "http"
    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    huge_finished: threading.Event = field(default_factory=threading.Event)
    huge_sent: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        receiver.requests.append(Received(self.path, headers, body))
        # The sender hangs up on a stall or a huge body, as it should.
        with contextlib.suppress(OSError):
            self._answer(receiver)

    do_GET = do_POST

    def _answer(self, receiver: Receiver) -> None:
        if self.path.startswith("/status/"):
            self.send_response(int(self.path.rsplit("/", 1)[1]))
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/landing")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/stall":
            receiver.release.wait()
        elif self.path == "/huge":
            self._huge(receiver)
        else:
            self.send_response(204)
            self.end_headers()

    def _huge(self, receiver: Receiver) -> None:
        self.send_response(200)
        self.send_header("content-length", str(HUGE_BODY_BYTES))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            while receiver.huge_sent < HUGE_BODY_BYTES:
                self.wfile.write(chunk)
                receiver.huge_sent += len(chunk)
        finally:
            receiver.huge_finished.set()


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    receiver = Receiver(host="127.0.0.1", port=server.server_address[1])
    if tls is not None:
        receiver.scheme = "https"

        def remember_name(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
            receiver.server_names.append(name)

        tls.sni_callback = remember_name
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(PATIENCE_SECONDS)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as started:
        yield started


def _self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


# --- Resolution and dialling the tests control ----------------------------------------------


class ScriptedResolver:
    """Answers each resolution with the next scripted answer (the last one repeats)."""

    def __init__(self, *answers: Sequence[IPAddress]) -> None:
        self._answers = answers
        self.calls = 0

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        answer = self._answers[min(self.calls, len(self._answers) - 1)]
        self.calls += 1
        return answer


class DialRecorder:
    """Records every address dialled; dials loopback for real and refuses any other."""

    def __init__(self) -> None:
        self.dialled: list[str] = []

    async def __call__(
        self, address: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
    ) -> Streams:
        self.dialled.append(address)
        if not ip_address(address).is_loopback:
            raise ConnectionRefusedError("this test does not leave the machine")
        return await open_streams(address, port, tls, server_hostname)


def _local_policy(*hosts: str, allow_private: bool = True) -> DestinationPolicy:
    return DestinationPolicy(
        allowed_hosts=frozenset(hosts or {"127.0.0.1"}),
        allow_http=True,
        allow_private=allow_private,
    )


SECRET = new_signing_secret()
BODY = webhook_body(
    event=WebhookEvent.REVEALED,
    status="revealed",
    closed_at=dt.datetime(2026, 12, 7, 5, 0, 0, tzinfo=dt.UTC),
    failed_attempts=1,
    public_id="r_3f9c2a",
)


def _signed(webhook_id: str = "msg_1") -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return dict(signature_headers(secret=SECRET, webhook_id=webhook_id, timestamp=now, body=BODY))


async def _send(
    url: str,
    policy: DestinationPolicy,
    *,
    timeouts: DeliveryTimeouts | None = None,
    resolver: Resolver = system_resolver,
    dialler: DialRecorder | None = None,
    headers: dict[str, str] | None = None,
) -> DeliveryOutcome:
    async with WebhookSender(
        policy, timeouts=timeouts, resolver=resolver, dial=dialler or open_streams
    ) as sender:
        return await sender.deliver(url, body=BODY, headers=headers or _signed())


# --- Signatures -----------------------------------------------------------------------------


def test_the_specifications_vector_signs_as_published() -> None:
    # The Standard Webhooks test vector.
    headers = signature_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=dt.datetime.fromtimestamp(1614265330, dt.UTC),
        body=b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_new_signing_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


@pytest.mark.parametrize(
    "secret",
    ["", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not*base64", "whsec_c2hvcnQ="],
)
def test_a_malformed_signing_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="signing secret"):
        signature_headers(
            secret=secret, webhook_id="msg_1", timestamp=dt.datetime.now(dt.UTC), body=b"{}"
        )


def test_signing_needs_an_aware_timestamp_and_an_id() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signature_headers(
            secret=SECRET, webhook_id="msg_1", timestamp=dt.datetime(2026, 12, 7), body=b"{}"
        )
    with pytest.raises(ValueError, match="webhook_id"):
        signature_headers(
            secret=SECRET, webhook_id="", timestamp=dt.datetime.now(dt.UTC), body=b"{}"
        )


async def test_a_receiver_verifies_the_delivery_with_the_standardwebhooks_library(
    receiver: Receiver,
) -> None:
    outcome = await _send(receiver.url(), _local_policy(), headers=_signed("msg_verify"))

    assert outcome == DeliveryOutcome(
        delivered=True, reason="status 204", retry=False, status_code=204
    )
    [request] = receiver.requests
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("onetime-secrets-webhooks/")
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert standardwebhooks.Webhook(SECRET).verify(request.body, request.headers) == json.loads(
        BODY
    )
    # And by hand, as a receiver without the library would.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"msg_verify.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"


async def test_a_retry_carries_the_same_webhook_id(receiver: Receiver) -> None:
    async with WebhookSender(_local_policy()) as sender:
        for _ in range(2):
            outcome = await sender.deliver(receiver.url(), body=BODY, headers=_signed("msg_same"))
            assert outcome.delivered

    assert [request.headers["webhook-id"] for request in receiver.requests] == ["msg_same"] * 2
    for request in receiver.requests:
        standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)


# --- Delivery -------------------------------------------------------------------------------


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(receiver: Receiver) -> None:
    outcome = await _send(receiver.url("/redirect"), _local_policy())

    assert outcome == DeliveryOutcome(
        delivered=False, reason="status 302", retry=True, status_code=302
    )
    assert receiver.paths() == ["/redirect"]


@pytest.mark.parametrize(
    ("status", "delivered", "retry"),
    [
        (200, True, False),
        (202, True, False),
        (400, False, True),
        (404, False, True),
        (408, False, True),
        (410, False, False),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
async def test_the_status_code_decides_delivered_and_retry(
    receiver: Receiver, status: int, delivered: bool, retry: bool
) -> None:
    outcome = await _send(receiver.url(f"/status/{status}"), _local_policy())

    assert outcome == DeliveryOutcome(
        delivered=delivered, reason=f"status {status}", retry=retry, status_code=status
    )


async def test_a_receiver_that_never_answers_times_out(receiver: Receiver) -> None:
    outcome = await _send(receiver.url("/stall"), _local_policy(), timeouts=SHORT)

    assert outcome == DeliveryOutcome(delivered=False, reason="timeout", retry=True)
    assert receiver.paths() == ["/stall"]


async def test_a_huge_answer_is_not_read_in_full(receiver: Receiver) -> None:
    outcome = await _send(receiver.url("/huge"), _local_policy())

    assert outcome.delivered
    assert outcome.status_code == 200
    assert await asyncio.to_thread(receiver.huge_finished.wait, PATIENCE_SECONDS)
    assert receiver.huge_sent < HUGE_BODY_BYTES


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await _send(f"http://127.0.0.1:{port}/hook", _local_policy())

    assert outcome == DeliveryOutcome(delivered=False, reason="connection error", retry=True)


async def test_a_name_without_addresses_is_worth_another_try() -> None:
    outcome = await _send(
        "http://hooks.test/", _local_policy("hooks.test"), resolver=ScriptedResolver([])
    )

    assert outcome == DeliveryOutcome(delivered=False, reason="name not resolved", retry=True)


@dataclass
class TlsReceiver:
    receiver: Receiver
    certificate: bytes

    def url(self) -> str:
        return f"https://hooks.test:{self.receiver.port}/hook"


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    """A receiver over TLS whose self-signed certificate names `hooks.test`."""
    certificate, key = _self_signed("hooks.test")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with serving(tls) as receiver:
        yield TlsReceiver(receiver, certificate)


async def _send_over_tls(
    tls_receiver: TlsReceiver, trusted: ssl.SSLContext | None, dialler: DialRecorder
) -> DeliveryOutcome:
    async with WebhookSender(
        _local_policy("hooks.test"),
        resolver=ScriptedResolver([LOOPBACK]),
        dial=dialler,
        ssl_context=trusted,
    ) as sender:
        return await sender.deliver(tls_receiver.url(), body=BODY, headers=_signed())


async def test_tls_checks_the_name_while_connecting_to_the_checked_address(
    tls_receiver: TlsReceiver,
) -> None:
    trusting = ssl.create_default_context(cadata=tls_receiver.certificate.decode())
    dialler = DialRecorder()

    outcome = await _send_over_tls(tls_receiver, trusting, dialler)

    assert outcome.delivered, outcome
    assert dialler.dialled == ["127.0.0.1"]
    assert tls_receiver.receiver.server_names == ["hooks.test"]
    [request] = tls_receiver.receiver.requests
    assert request.headers["host"] == f"hooks.test:{tls_receiver.receiver.port}"


async def test_an_untrusted_certificate_is_a_tls_error(tls_receiver: TlsReceiver) -> None:
    outcome = await _send_over_tls(tls_receiver, None, DialRecorder())

    assert outcome == DeliveryOutcome(delivered=False, reason="tls error", retry=True)
    assert tls_receiver.receiver.requests == []


class KeepAliveReceiver:
    """An HTTP/1.1 receiver on 127.0.0.1 that keeps connections open and counts them.

    After `close_after` answers on a connection, it reads the next request and closes the
    connection without answering, as a receiver whose idle timeout ran out just then would.
    """

    def __init__(self, close_after: int | None = None) -> None:
        self.connections = 0
        self.answered = 0
        self.unanswered = 0
        self._close_after = close_after

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if served == self._close_after:
                    self.unanswered += 1
                    return
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                served += 1
                self.answered += 1
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def _keep_alive_server(
    receiver: KeepAliveReceiver,
) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(receiver.answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hook"


async def test_a_kept_alive_connection_carries_the_next_webhooks() -> None:
    receiver = KeepAliveReceiver()
    server, url = await _keep_alive_server(receiver)
    async with server, WebhookSender(_local_policy()) as sender:
        outcomes = [await sender.deliver(url, body=BODY, headers=_signed()) for _ in range(3)]

    assert all(outcome.delivered for outcome in outcomes), outcomes
    assert (receiver.connections, receiver.answered) == (1, 3)


async def test_a_connection_the_receiver_closed_costs_no_attempt() -> None:
    receiver = KeepAliveReceiver(close_after=1)
    server, url = await _keep_alive_server(receiver)
    async with server, WebhookSender(_local_policy()) as sender:
        first = await sender.deliver(url, body=BODY, headers=_signed())
        # Sent on the kept line, which the receiver closes unanswered: sent again on a new one.
        second = await sender.deliver(url, body=BODY, headers=_signed())

    assert first.delivered, first
    assert second.delivered, second
    assert (receiver.connections, receiver.answered, receiver.unanswered) == (2, 2, 1)


async def test_deliver_sends_one_webhook_on_its_own(receiver: Receiver) -> None:
    outcome = await deliver(receiver.url(), BODY, _signed(), _local_policy())

    assert outcome.delivered
    assert receiver.paths() == ["/hook"]


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "connection"])
async def test_the_caller_cannot_set_the_requests_framing(receiver: Receiver, name: str) -> None:
    with pytest.raises(ValueError, match="set by the sender"):
        await _send(receiver.url(), _local_policy(), headers={**_signed(), name: "x"})
    assert receiver.requests == []


# --- Destinations refused before any connection ---------------------------------------------


async def test_a_url_the_policy_refuses_is_not_sent(receiver: Receiver) -> None:
    https_only = DestinationPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_private=True)

    outcome = await _send(receiver.url(), https_only)

    assert outcome == DeliveryOutcome(
        delivered=False, reason="refused: URL must use https", retry=False
    )
    assert receiver.requests == []


async def test_localhost_resolves_to_loopback_and_is_refused(receiver: Receiver) -> None:
    url = f"http://localhost:{receiver.port}/hook"

    refused = await _send(url, _local_policy("localhost", allow_private=False))
    allowed = await _send(url, _local_policy("localhost", allow_private=True))

    assert refused == DeliveryOutcome(
        delivered=False, reason="refused: loopback address", retry=False
    )
    assert allowed.delivered
    assert receiver.paths() == ["/hook"]


@pytest.mark.parametrize(
    ("answer", "allow_private", "reason"),
    [
        ([IPv4Address("10.1.2.3")], False, "refused: private address"),
        ([IPv4Address("169.254.169.254")], False, "refused: metadata address"),
        ([IPv4Address("169.254.169.254")], True, "refused: metadata address"),
        ([IPv6Address("::1")], False, "refused: loopback address"),
        ([IPv6Address("::ffff:127.0.0.1")], False, "refused: loopback address"),
        ([PUBLIC, LOOPBACK], False, "refused: loopback address"),
        ([LOOPBACK, PUBLIC], False, "refused: loopback address"),
    ],
)
async def test_every_resolved_address_is_checked_before_connecting(
    receiver: Receiver, answer: list[IPAddress], allow_private: bool, reason: str
) -> None:
    dialler = DialRecorder()

    outcome = await _send(
        f"http://hooks.test:{receiver.port}/hook",
        _local_policy("hooks.test", allow_private=allow_private),
        resolver=ScriptedResolver(answer),
        dialler=dialler,
    )

    assert outcome == DeliveryOutcome(delivered=False, reason=reason, retry=False)
    assert dialler.dialled == []
    assert receiver.requests == []


async def test_dns_rebinding_cannot_swap_the_checked_address(receiver: Receiver) -> None:
    # The name answers a public address first and loopback ever after: a sender that
    # resolved once to check and again to connect would reach the receiver on loopback.
    resolver = ScriptedResolver([PUBLIC], [LOOPBACK])
    dialler = DialRecorder()
    policy = _local_policy("rebind.test", allow_private=False)
    url = f"http://rebind.test:{receiver.port}/hook"

    async with WebhookSender(policy, resolver=resolver, dial=dialler) as sender:
        first = await sender.deliver(url, body=BODY, headers=_signed())
        assert (resolver.calls, dialler.dialled) == (1, [str(PUBLIC)])
        # The next attempt resolves anew, sees loopback and refuses it.
        second = await sender.deliver(url, body=BODY, headers=_signed())

    assert first == DeliveryOutcome(delivered=False, reason="connection error", retry=True)
    assert second == DeliveryOutcome(
        delivered=False, reason="refused: loopback address", retry=False
    )
    assert dialler.dialled == [str(PUBLIC)]
    assert receiver.requests == []


# --- The destination policy at create time --------------------------------------------------

POLICY = DestinationPolicy(allowed_hosts=frozenset({"hooks.example.com", "*.example.net"}))


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "https://hooks.example.com:8443/in?token=abc",
        "https://HOOKS.Example.COM/in",
        "https://hooks.example.com./in",
        "https://a.example.net/",
        "https://deep.a.example.net/",
    ],
)
def test_an_allowed_url_passes(url: str) -> None:
    assert check_url(url, POLICY) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.test/in", "host is not on the allow list"),
        ("https://example.net/", "host is not on the allow list"),
        ("https://evil-example.net/", "host is not on the allow list"),
        ("https://example.net.evil.test/", "host is not on the allow list"),
        ("https://a.example.com/", "host is not on the allow list"),
        ("http://hooks.example.com/in", "URL must use https"),
        ("ftp://hooks.example.com/in", "URL must use https"),
        ("https://user:pass@hooks.example.com/in", "URL must not carry a user name or password"),
        ("https://user@hooks.example.com/in", "URL must not carry a user name or password"),
        ("https://hooks.example.com/in#part", "URL must not have a fragment"),
        ("https://hooks.example.com:99999/in", "URL has an invalid port"),
        ("https://127.1/", "URL does not name a valid host"),
        ("https://2130706433/", "URL does not name a valid host"),
        ("https://exa mple.example.net/", "URL does not name a valid host"),
        ("https:///in", "URL does not name a valid host"),
        ("https://hooks.example.com/" + "a" * 2048, "URL is too long"),
        ("https://[::1/", "URL is not valid"),
    ],
)
def test_a_refused_url_says_why_without_quoting_it(url: str, reason: str) -> None:
    assert check_url(url, POLICY) == reason


def test_with_http_allowed_other_schemes_are_still_refused() -> None:
    policy = DestinationPolicy(allowed_hosts=frozenset({"hooks.example.com"}), allow_http=True)

    assert check_url("http://hooks.example.com/in", policy) is None
    assert check_url("ftp://hooks.example.com/in", policy) == "URL must use http or https"


def test_an_empty_allow_list_turns_webhooks_off() -> None:
    assert (
        check_url("https://hooks.example.com/", DestinationPolicy()) == "webhooks are not enabled"
    )


def test_hosts_compare_in_lower_case_and_idna() -> None:
    policy = DestinationPolicy(allowed_hosts=frozenset({"Bücher.Example", "*.Straße.example"}))

    assert policy.allowed_hosts == {"xn--bcher-kva.example", "*.xn--strae-oqa.example"}
    assert check_url("https://BÜCHER.example/in", policy) is None
    assert check_url("https://xn--bcher-kva.example/in", policy) is None
    assert check_url("https://a.straße.example/", policy) is None
    assert check_url("https://bucher.example/", policy) == "host is not on the allow list"


@pytest.mark.parametrize(
    ("entry", "url", "reason"),
    [
        ("127.0.0.1", "https://127.0.0.1:8443/", "host is a loopback address"),
        ("[::1]", "https://[::1]/", "host is a loopback address"),
        ("::1", "https://[0:0::1]/", "host is a loopback address"),
        ("[::ffff:127.0.0.1]", "https://[::ffff:127.0.0.1]/", "host is a loopback address"),
        ("10.0.0.1", "https://10.0.0.1/", "host is a private address"),
        ("169.254.169.254", "https://169.254.169.254/", "host is a metadata address"),
        ("[fd00:ec2::254]", "https://[fd00:ec2::254]/", "host is a metadata address"),
        ("8.8.8.8", "https://8.8.8.8/", None),
        ("127.0.0.1", "https://[::1]/", "host is not on the allow list"),
    ],
)
def test_an_ip_literal_must_be_allowed_as_written_and_public(
    entry: str, url: str, reason: str | None
) -> None:
    assert check_url(url, DestinationPolicy(allowed_hosts=frozenset({entry}))) == reason


def test_allow_private_admits_private_literals_but_never_metadata() -> None:
    policy = DestinationPolicy(
        allowed_hosts=frozenset({"127.0.0.1", "[::1]", "169.254.169.254"}), allow_private=True
    )

    assert check_url("https://127.0.0.1/", policy) is None
    assert check_url("https://[::1]/", policy) is None
    assert check_url("https://169.254.169.254/", policy) == "host is a metadata address"


@pytest.mark.parametrize("entry", ["*", "*.", "bad host", "127.1", "a..example.com", ""])
def test_a_malformed_allowed_host_fails_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed host"):
        DestinationPolicy(allowed_hosts=frozenset({entry}))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("0.0.0.0", "unspecified address"),  # noqa: S104 - an address under test
        ("::", "unspecified address"),
        ("169.254.1.1", "link-local address"),
        ("fe80::1", "link-local address"),
        ("fe80::1%eth0", "link-local address"),
        ("fc00::1", "unique-local address"),
        ("fd12:3456::1", "unique-local address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("240.0.0.1", "reserved address"),
        ("100.64.0.1", "shared (CGNAT) address"),
        ("100.127.255.254", "shared (CGNAT) address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:10.0.0.1", "private address"),
        ("64:ff9b::a00:1", "private address"),
        ("2002:7f00:1::", "loopback address"),
        ("169.254.169.254", "metadata address"),
        ("::ffff:169.254.169.254", "metadata address"),
        ("fd00:ec2::254", "metadata address"),
        ("100.100.100.200", "metadata address"),
    ],
)
def test_the_address_classifier(address: str, reason: str | None) -> None:
    assert address_refusal(ip_address(address), allow_private=False) == reason
    allowed = reason if reason == "metadata address" else None
    assert address_refusal(ip_address(address), allow_private=True) == allowed


# --- Backoff --------------------------------------------------------------------------------


class _Extreme(random.Random):
    """A random source stuck at one end of [0, 1)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self._value = value

    def random(self) -> float:
        return self._value


def test_the_first_attempt_goes_at_once() -> None:
    assert delay_before_attempt(1, rng=_Extreme(0.999)) == 0.0


def test_the_delay_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    highest = [
        delay_before_attempt(n, rng=_Extreme(1.0), base_seconds=5, cap_seconds=3600)
        for n in range(2, 12)
    ]

    assert highest == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560]
    assert delay_before_attempt(12, rng=_Extreme(1.0)) == 3600
    assert delay_before_attempt(10_000, rng=_Extreme(1.0)) == 3600
    assert delay_before_attempt(30, rng=_Extreme(0.0)) == 0.0


def test_jitter_stays_within_bounds_and_repeats_with_the_seed() -> None:
    first = [delay_before_attempt(n, rng=random.Random(7)) for n in range(2, 40)]
    again = [delay_before_attempt(n, rng=random.Random(7)) for n in range(2, 40)]

    assert first == again
    for n, delay in enumerate(first, start=2):
        assert 0.0 <= delay <= min(3600.0, 5.0 * 2 ** (n - 2))


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        delay_before_attempt(0, rng=random.Random(0))


def test_the_retry_window_closes_after_retry_hours() -> None:
    first = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)

    assert not retry_window_closed(first_attempt_at=first, now=first, retry_hours=24)
    almost = first + dt.timedelta(hours=24) - dt.timedelta(seconds=1)
    assert not retry_window_closed(first_attempt_at=first, now=almost, retry_hours=24)
    assert retry_window_closed(
        first_attempt_at=first, now=first + dt.timedelta(hours=24), retry_hours=24
    )


# --- The body -------------------------------------------------------------------------------


def test_the_body_holds_exactly_the_documented_keys_compact_and_sorted() -> None:
    body = webhook_body(
        event=WebhookEvent.DESTROYED,
        status="destroyed",
        closed_at=dt.datetime(
            2026, 12, 7, 7, 30, 5, 999, tzinfo=dt.timezone(dt.timedelta(hours=2))
        ),
        failed_attempts=3,
        public_id="r_abc",
    )

    assert body == (
        b'{"closed_at":"2026-12-07T05:30:05Z","failed_attempts":3,'
        b'"public_id":"r_abc","status":"destroyed","type":"secret.destroyed"}'
    )


def test_the_body_takes_nothing_secret() -> None:
    parameters = set(inspect.signature(webhook_body).parameters)

    assert parameters == {"event", "status", "closed_at", "failed_attempts", "public_id"}
    assert {str(event) for event in WebhookEvent} == {
        "secret.revealed",
        "secret.burned",
        "secret.revoked",
        "secret.destroyed",
        "secret.expired",
    }


def test_the_body_refuses_a_naive_time_or_negative_attempts() -> None:
    closed = dt.datetime(2026, 12, 7, 5, 0)
    with pytest.raises(ValueError, match="timezone"):
        webhook_body(
            event=WebhookEvent.EXPIRED,
            status="expired",
            closed_at=closed,
            failed_attempts=0,
            public_id="r",
        )
    with pytest.raises(ValueError, match="negative"):
        webhook_body(
            event=WebhookEvent.EXPIRED,
            status="expired",
            closed_at=closed.replace(tzinfo=dt.UTC),
            failed_attempts=-1,
            public_id="r",
        )
