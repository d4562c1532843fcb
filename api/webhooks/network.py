"""Connections only to checked addresses: resolve once, check every address, connect to it.

`connect_checked` resolves the host itself, refuses the connection if any address the name
resolves to is refused by the policy, and connects to one of those same addresses, so a name
that answers a public address to a check and a private one to the connection (DNS
rebinding) cannot slip through. TLS still checks the certificate against the name (and
sends it as SNI), not the address.
"""

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import ip_address

from api.webhooks.addresses import IPAddress, address_refusal

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Resolve `(host, port)` to the addresses to connect to, in order of preference."""

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

Dialler = Callable[[str, int, ssl.SSLContext | None, str | None], Awaitable[Streams]]
"""Open a connection to `(address, port)`; over TLS when given a context, for that name."""


class NameNotResolved(OSError):
    """The host name has no address (or the resolver failed): worth another try later."""


class DestinationRefused(Exception):
    """An address the host resolves to is not allowed; `reason` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def system_resolver(host: str, port: int) -> Sequence[IPAddress]:
    """Resolve `host` with the system's resolver (getaddrinfo), without duplicates."""
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as error:
        raise NameNotResolved("name not resolved") from error
    addresses: list[IPAddress] = []
    for *_, sockaddr in answers:
        address = ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def open_streams(
    address: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> Streams:
    """Connect to `address` (asyncio sets TCP_NODELAY), with TLS for `server_hostname`."""
    return await asyncio.open_connection(
        address, port, ssl=tls, server_hostname=server_hostname if tls is not None else None
    )


async def _addresses(host: str, port: int, resolver: Resolver) -> Sequence[IPAddress]:
    try:
        return [ip_address(host)]
    except ValueError:
        pass
    addresses = await resolver(host, port)
    if not addresses:
        raise NameNotResolved("name not resolved")
    return addresses


async def connect_checked(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    dial: Dialler = open_streams,
) -> Streams:
    """Resolve `host`, refuse it if any of its addresses is refused, else connect to one."""
    addresses = await _addresses(host, port, resolver)
    # Every address, not only the first: a name may list a private one after a public
    # one, and which is used would then be chance.
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            raise DestinationRefused(refusal)
    *others, last = addresses
    for address in others:
        try:
            return await dial(str(address), port, tls, host)
        except ssl.SSLError:
            raise  # the receiver's own answer, the same on every address
        except OSError:
            continue  # this address does not answer; the next one may
    return await dial(str(last), port, tls, host)
