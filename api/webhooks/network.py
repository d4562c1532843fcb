"""Connections only to checked addresses: resolve once, check every address, connect to it.

An httpcore network backend in front of the default one. Its `connect_tcp` resolves the
host itself, refuses the connection if any address the name resolves to is refused by the
policy, and connects to one of those same addresses, so a name that answers a public
address to a check and a private one to the connection (DNS rebinding) cannot slip through.
The URL keeps the name, so the Host header and TLS (SNI and certificate) still use it.
"""

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import ip_address

import httpcore

from api.webhooks.addresses import IPAddress, address_refusal

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Resolve `(host, port)` to the addresses to connect to, in order of preference."""


class NameNotResolved(httpcore.ConnectError):
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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int, within: float | None) -> Sequence[IPAddress]:
        try:
            return [ip_address(host)]
        except ValueError:
            pass
        try:
            async with asyncio.timeout(within):
                addresses = await self._resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        if not addresses:
            raise NameNotResolved("name not resolved")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve `host`, refuse it if any of its addresses is refused, else connect."""
        addresses = await self._addresses(host, port, timeout)
        # Every address, not only the first: a name may list a private one after a public
        # one, and which is used would then be chance.
        for address in addresses:
            refusal = address_refusal(address, allow_private=self._allow_private)
            if refusal is not None:
                raise DestinationRefused(refusal)
        *others, last = addresses
        for address in others:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
        return await self._backend.connect_tcp(
            str(last), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refuse: webhooks go over TCP only."""
        raise DestinationRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self._backend.sleep(seconds)
