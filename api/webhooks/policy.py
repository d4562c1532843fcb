"""Which URLs may receive webhooks: an allow list of hosts, https, and public addresses.

`check_url` runs when a webhook URL is given (and again before each delivery), without
touching the network; the addresses a name resolves to are checked when it is delivered to
(`api.webhooks.network`). Reasons never quote the URL: its path or query may be a token.
"""

import re
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address

import httpx

from api.webhooks.addresses import IPAddress, address_refusal

MAX_URL_LENGTH = 2048
_MAX_NAME_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _is_dns_name(host: str) -> bool:
    if len(host) > _MAX_NAME_LENGTH:
        return False
    labels = host.split(".")
    # A last label of digits makes resolvers read the name as an IPv4 address (`127.1`).
    return all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _normal_name(name: str) -> str:
    # httpx's own IDNA encoding and lower case, so an entry compares with what is requested.
    host = httpx.URL(scheme="https", host=name.strip()).raw_host.decode("ascii")
    host = host.removesuffix(".")
    if not _is_dns_name(host):
        raise ValueError("an allowed host is a host name, *.name or an IP address")
    return host


def _normal_entry(entry: str) -> str:
    literal = _ip_literal(entry.strip())
    if literal is not None:
        return str(literal)
    if entry.startswith("*."):
        return "*." + _normal_name(entry.removeprefix("*."))
    return _normal_name(entry)


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Where webhooks may go.

    `allowed_hosts` holds host names (`hooks.example.com`), wildcards for every subdomain at
    any depth (`*.example.com`, which does not match `example.com` itself) and IP addresses
    as written in a URL (`127.0.0.1`, `[::1]`); empty turns webhooks off. Names are compared
    in lower case, IDNA-encoded. `allow_http` admits `http://`; `allow_private` admits
    loopback, private, link-local and other non-public addresses (never cloud metadata).
    """

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_http: bool = False
    allow_private: bool = False

    def __post_init__(self) -> None:
        normal = frozenset(_normal_entry(entry) for entry in self.allowed_hosts)
        # A frozen dataclass sets its fields once; this is that once, normalised.
        object.__setattr__(self, "allowed_hosts", normal)

    @property
    def enabled(self) -> bool:
        """Whether any host may receive webhooks."""
        return bool(self.allowed_hosts)

    def allows_host(self, host: str) -> bool:
        """Whether `host` (lower case, IDNA-encoded, as in a URL) is on the allow list."""
        literal = _ip_literal(host)
        if literal is not None:
            return str(literal) in self.allowed_hosts
        host = host.removesuffix(".")
        if host in self.allowed_hosts:
            return True
        parents = host.split(".")[1:]
        return any(
            "*." + ".".join(parents[index:]) in self.allowed_hosts for index in range(len(parents))
        )


def check_url(url: str, policy: DestinationPolicy) -> str | None:
    """Return why `url` may not receive webhooks under `policy`, or None if it may.

    A name is not resolved here; its addresses are checked at each delivery.
    """
    if not policy.enabled:
        return "webhooks are not enabled"
    if len(url) > MAX_URL_LENGTH:
        return "URL is too long"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "URL is not valid"
    if parsed.scheme not in ("https", "http") or (
        parsed.scheme == "http" and not policy.allow_http
    ):
        return "URL must use http or https" if policy.allow_http else "URL must use https"
    if parsed.userinfo:
        return "URL must not carry a user name or password"
    if "#" in url:
        return "URL must not have a fragment"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "URL has an invalid port"
    host = parsed.raw_host.decode("ascii")
    literal = _ip_literal(host)
    if literal is None and not _is_dns_name(host.removesuffix(".")):
        return "URL does not name a valid host"
    if isinstance(literal, IPv6Address) and literal.scope_id:
        return "URL does not name a valid host"
    if not policy.allows_host(host):
        return "host is not on the allow list"
    if literal is not None:
        refusal = address_refusal(literal, allow_private=policy.allow_private)
        if refusal is not None:
            return f"host is a {refusal}"
    return None
