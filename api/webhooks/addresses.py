"""Which IP addresses a webhook may reach: the public internet, unless told otherwise.

A webhook URL is chosen by whoever creates a secret, so without this check it could make the
service call its own loopback, the private network or a cloud metadata endpoint (SSRF).
"""

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address

# Cloud instance metadata and credential endpoints. They are refused even where private
# addresses are allowed: no receiver lives there, and they hand out credentials.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean
        IPv4Address("169.254.170.2"),  # AWS ECS task credentials
        IPv4Address("169.254.170.23"),  # AWS EKS pod identity
        IPv4Address("100.100.100.200"),  # Alibaba Cloud
        IPv6Address("fd00:ec2::254"),  # AWS, over IPv6
        IPv6Address("fd00:ec2::23"),  # AWS EKS pod identity, over IPv6
    }
)
_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_UNIQUE_LOCAL = IPv6Network("fc00::/7")
_NAT64 = IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    # An IPv6 address that carries an IPv4 one reaches that IPv4 host, so judge that one.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(address.packed[-4:])
    return None


def _kind_of_non_public(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address in _SHARED_ADDRESS_SPACE:
        return "shared (CGNAT) address"
    if address in _UNIQUE_LOCAL:
        return "unique-local address"
    if address.is_reserved:
        return "reserved address"
    if address.is_private:
        return "private address"
    if not address.is_global:
        return "non-global address"
    return None


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Return why a webhook may not reach `address` (`"loopback address"`, …), or None."""
    judged: list[IPAddress] = [address]
    if isinstance(address, IPv6Address):
        # A scope (`fe80::1%eth0`) names an interface, not another address.
        address = IPv6Address(address.packed)
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            judged = [embedded, address]
    if any(candidate in METADATA_ADDRESSES for candidate in judged):
        return "metadata address"
    if allow_private:
        return None
    # The carried IPv4 address is the one reached: ::ffff:8.8.8.8 is as public as 8.8.8.8.
    return _kind_of_non_public(judged[0])
