"""Which IP addresses a request to a user-given URL may reach: only globally routable unicast
ones. Loopback, private (RFC 1918), link-local, shared (CGNAT), unique-local, unspecified,
multicast and reserved addresses are refused, and so is an IPv4 address carried inside an IPv6
one (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo) when the carried one would be."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

# A name (or an address in any spelling) and a port -> the addresses to connect to.
Resolver = Callable[[str, int], Sequence[str]]

METADATA = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
RFC1918 = (ip_network("10.0.0.0/8"), ip_network("172.16.0.0/12"), ip_network("192.168.0.0/16"))
NAT64 = (ip_network("64:ff9b::/96"), ip_network("64:ff9b:1::/48"))


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolves ``host`` to (numeric spellings such as ``2130706433``,
    ``0x7f.1`` or ``127.1`` included), each once, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def carried_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries, where it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        return IPv4Address(int(address))
    return None


def _kind_v4(address: IPv4Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address in SHARED:
        return "a shared (carrier-grade NAT) address"
    if any(address in network for network in RFC1918):
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _kind_v6(address: IPv6Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    carried = carried_ipv4(address)
    if carried is not None:
        return refusal(str(carried))
    if address.is_link_local or address.is_site_local:
        return "a link-local address"
    if address in ip_network("fc00::/7"):
        return "a unique-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def refusal(text: str) -> str | None:
    """What kind of address ``text`` is when requests may not go there ("a loopback
    address"), or None for a public one. Anything that is not an IP address is refused."""
    try:
        address = ip_address(text.split("%", 1)[0])  # fe80::1%eth0: the scope is no part of it
    except ValueError:
        return "not an IP address"
    if address in METADATA:
        return "the cloud metadata address"
    if isinstance(address, IPv4Address):
        return _kind_v4(address)
    return _kind_v6(address)
