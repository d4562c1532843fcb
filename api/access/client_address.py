"""Which client a request comes from, for per-client limits.

`X-Forwarded-For` is believed only when the direct peer is one of `TRUSTED_PROXIES`. Each
proxy appends the address it saw, so the list is read from the right, skipping trusted
proxies; the first address that is not one is the client. Everything to its left was
written by the client itself and is ignored.

IPv6 clients are counted per /64 network: one host usually holds a whole /64, so counting
single addresses would give it billions of separate limits.
"""

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

IPV6_PREFIX_LENGTH = 64
UNKNOWN_CLIENT = "unknown"


@lru_cache(maxsize=16)
def parse_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parse addresses and CIDR ranges (`10.0.0.1`, `172.16.0.0/12`, `::1`) into networks."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


@lru_cache(maxsize=4096)  # the same few peers send most requests
def _parse_address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def resolve_client(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """Return the client's address, or None when the peer has no IP address.

    `forwarded_for` holds every `X-Forwarded-For` header value in the order received. An
    entry that is not an IP address ends the walk, and the trusted hop that passed it on is
    counted as the client.
    """
    address = _parse_address(peer) if peer else None
    if address is None or not _is_trusted(address, trusted):
        return address
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        forwarded = _parse_address(hop)
        if forwarded is None:
            return address
        address = forwarded
        if not _is_trusted(address, trusted):
            return address
    # Every hop is a trusted proxy: the left-most one is the farthest we can see.
    return address


@lru_cache(maxsize=4096)
def limit_key(address: IPAddress | None) -> str:
    """Return the text a client is counted under: its IPv4 address or its IPv6 /64."""
    if address is None:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX_LENGTH}", strict=False))
    return str(address)
