"""Client addresses for the RemoteAddr and XForwardedRemoteAddr predicates: IP parsing, CIDR sets, X-Forwarded-For.

Networks are parsed once at load into integer (network, mask) pairs, so a request costs one address parse (cached)
and a few integer comparisons. Only IP literals are accepted: SCG resolves host names in `sources` and in
X-Forwarded-For entries through DNS, which would put a lookup (and an attacker-chosen name) on the request path.

IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4 client) are treated as
the IPv4 address they carry, both as request addresses and as configured networks, so `10.0.0.0/8` matches them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from gateway.headers import Headers

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MAX_TEXT = 64  # longer than any IP literal with port and zone; refusing early bounds the work per entry


@lru_cache(maxsize=4096)  # peers and proxy hops repeat; the cache is bounded, so hostile values only churn it
def parse_ip(text: str) -> IPAddress | None:
    """The IP address in a socket peer or X-Forwarded-For entry, or None when it is not an IP literal.

    Accepts `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80` and a zone (`fe80::1%eth0`); an IPv4-mapped
    IPv6 address comes back as IPv4. Never raises.
    """
    text = text.strip()
    if not text or len(text) > _MAX_TEXT:
        return None
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not _is_port(port)):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        text, colon, port = text.partition(":")
        if not _is_port(colon + port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _unmapped(address)


def _is_port(text: str) -> bool:
    return text.startswith(":") and 1 < len(text) <= 6 and text[1:].isascii() and text[1:].isdigit()


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_cidr(text: str) -> IPNetwork:
    """A configured source: CIDR (`10.0.0.0/8`) or a plain address (a /32 or /128). Raises ValueError saying why.

    Host bits may be set (`192.168.0.1/16` means `192.168.0.0/16`, as in SCG). An IPv4-mapped IPv6 network of
    prefix 96 or more becomes the IPv4 network it covers.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or CIDR block (e.g. 10.0.0.0/8, 192.168.1.7, 2001:db8::/32); "
            "host names are not accepted"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        mapped = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


class CidrSet:
    """Networks parsed once; `contains` tests an address with integer masks (no object per network per request)."""

    __slots__ = ("networks", "_v4", "_v6")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4)
        self._v6 = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 6)

    @classmethod
    def parse(cls, sources: Iterable[str]) -> CidrSet:
        """From config strings; raises ValueError naming the first that is not a network (see `parse_cidr`)."""
        return cls(parse_cidr(s) for s in sources)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, address: IPAddress | None) -> bool:
        """True when `address` lies in one of the networks; None (no usable address) is never contained."""
        if address is None:
            return False
        value = int(address)
        pairs = self._v4 if address.version == 4 else self._v6
        return any(value & mask == network for network, mask in pairs)


def forwarded_for(headers: Headers) -> list[str]:
    """The X-Forwarded-For entries, left (first client) to right (last hop), every field line in order.

    Several field lines are one comma-separated list (RFC 9110 §5.3); empty list elements are skipped (§5.6.1).
    """
    return [entry for line in headers.get_all("X-Forwarded-For") for e in line.split(",") if (entry := e.strip())]


def client_behind_proxies(peer: str, headers: Headers, trusted: CidrSet) -> IPAddress | None:
    """The client address: the socket peer, or, when that peer is a trusted proxy, the right-most X-Forwarded-For
    entry that is not itself a trusted proxy (every hop trusted: the left-most one).

    None when the peer is not an IP address or an entry that must be read is not one (the caller fails closed).
    """
    address = parse_ip(peer)
    # SECURITY: X-Forwarded-For is a claim; only a proxy we trust may make it, and only hops it vouches for count.
    if address is None or not trusted.contains(address):
        return address
    for entry in reversed(forwarded_for(headers)):
        hop = parse_ip(entry)
        if hop is None or not trusted.contains(hop):
            return hop  # the first hop no trusted proxy vouches for: the client (garbage there: no client)
        address = hop
    return address


def nth_from_right(peer: str, headers: Headers, index: int) -> IPAddress | None:
    """SCG's `maxTrustedIndex` resolution: the X-Forwarded-For entry `index` places from the right (1 = the
    right-most); the left-most when there are fewer; the socket peer when there is no X-Forwarded-For.

    None when the chosen text is not an IP address.
    """
    entries = forwarded_for(headers)
    if not entries:
        return parse_ip(peer)
    return parse_ip(entries[-min(index, len(entries))])
