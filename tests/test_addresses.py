"""Client addresses (gateway.addresses): IP literals, CIDR sets, X-Forwarded-For walking. Pure functions."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.addresses import CidrSet, client_behind_proxies, forwarded_for, nth_from_right, parse_cidr, parse_ip
from gateway.headers import Headers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.1.2.3", "10.1.2.3"),
        (" 10.1.2.3 ", "10.1.2.3"),
        ("10.1.2.3:8080", "10.1.2.3"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),  # what a dual-stack socket reports for an IPv4 client
        ("[::ffff:10.1.2.3]:80", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("", None),
        ("unknown", None),  # RFC 7239's obfuscated node, also seen in X-Forwarded-For
        ("client.example.org", None),  # names are never resolved
        ("10.1.2.3:", None),
        ("10.1.2.3:http", None),
        ("10.1.2.3:123456", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("10.1.2.256", None),
        ("1" * 100, None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.0.1/16", "192.168.0.0/16"),  # host bits are allowed, as in SCG
        ("10.0.0.7", "10.0.0.7/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
    ],
)
def test_parse_cidr(text: str, expected: str) -> None:
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize("text", ["", "10.0.0.0/33", "10.0.0", "gateway.local", "10.0.0.0/8/8", "2001:db8::/129"])
def test_parse_cidr_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR block"):
        parse_cidr(text)


def test_cidr_set_matches_v4_v6_and_mapped() -> None:
    nets = CidrSet.parse(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
    assert nets.contains(parse_ip("10.255.0.1"))
    assert nets.contains(parse_ip("::ffff:10.0.0.1"))
    assert nets.contains(parse_ip("192.168.1.7"))
    assert not nets.contains(parse_ip("192.168.1.8"))
    assert nets.contains(parse_ip("2001:db8:ffff::1"))
    assert not nets.contains(parse_ip("2001:db9::1"))
    assert not nets.contains(None)
    assert not CidrSet([]) and nets


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
_V6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
_ADDRESS = st.one_of(_V4, _V6).filter(lambda a: isinstance(a, ipaddress.IPv4Address) or a.ipv4_mapped is None)


@settings(deadline=None, max_examples=300)
@given(_ADDRESS, st.lists(st.tuples(_ADDRESS, st.integers(0, 128)), max_size=5))
def test_cidr_set_agrees_with_ipaddress(address: Address, raw: list[tuple[Address, int]]) -> None:
    # Mapped addresses are compared as IPv4 (see the example tests), so the oracle here leaves them out.
    networks = [ipaddress.ip_network(f"{a}/{min(p, a.max_prefixlen)}", strict=False) for a, p in raw]
    expected = any(address in n for n in networks if n.version == address.version)
    assert CidrSet(networks).contains(address) is expected


@settings(deadline=None, max_examples=500)
@given(st.text(max_size=80))
def test_parse_ip_never_raises(text: str) -> None:
    parse_ip(text)


def _xff(*lines: str) -> Headers:
    return Headers([("X-Forwarded-For", line) for line in lines])


def test_forwarded_for_joins_lines_and_skips_empty_elements() -> None:
    assert forwarded_for(_xff("1.1.1.1, 2.2.2.2", "3.3.3.3")) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    assert forwarded_for(_xff(" , 1.1.1.1,,2.2.2.2 ,")) == ["1.1.1.1", "2.2.2.2"]
    assert forwarded_for(Headers()) == []


TRUSTED = CidrSet.parse(["127.0.0.1", "172.16.0.0/12"])


@pytest.mark.parametrize(
    ("peer", "lines", "client"),
    [
        ("203.0.113.9", ["10.1.1.1"], "203.0.113.9"),  # untrusted peer: its X-Forwarded-For is ignored
        ("127.0.0.1", [], "127.0.0.1"),  # trusted peer without the header: the peer
        ("127.0.0.1", ["10.1.1.1"], "10.1.1.1"),
        ("127.0.0.1", ["6.6.6.6, 10.1.1.1"], "10.1.1.1"),  # the left part is the client's own claim
        ("127.0.0.1", ["10.1.1.1, 172.16.0.5"], "10.1.1.1"),  # trusted hops are skipped
        ("127.0.0.1", ["10.1.1.1", "172.16.0.5, 172.20.0.1"], "10.1.1.1"),
        ("127.0.0.1", ["172.16.0.9, 172.16.0.5"], "172.16.0.9"),  # all trusted: the left-most
        ("127.0.0.1", ["10.1.1.1, garbage"], None),  # garbage where the client should be: fail closed
        ("127.0.0.1", ["garbage, 10.1.1.1"], "10.1.1.1"),  # garbage further left is never read
        ("::ffff:127.0.0.1", ["10.1.1.1"], "10.1.1.1"),  # a mapped peer is the IPv4 proxy
        ("", ["10.1.1.1"], None),
    ],
)
def test_client_behind_proxies(peer: str, lines: list[str], client: str | None) -> None:
    found = client_behind_proxies(peer, _xff(*lines), TRUSTED)
    assert (str(found) if found is not None else None) == client


@pytest.mark.parametrize(
    ("lines", "index", "chosen"),
    [
        ([], 1, "198.51.100.1"),  # no header: the socket peer, as SCG
        (["1.1.1.1, 2.2.2.2, 3.3.3.3"], 1, "3.3.3.3"),
        (["1.1.1.1, 2.2.2.2, 3.3.3.3"], 2, "2.2.2.2"),
        (["1.1.1.1, 2.2.2.2, 3.3.3.3"], 3, "1.1.1.1"),
        (["1.1.1.1, 2.2.2.2, 3.3.3.3"], 9, "1.1.1.1"),  # fewer entries: the left-most, as SCG
        (["1.1.1.1", "2.2.2.2"], 1, "2.2.2.2"),  # several lines are one list
        (["not-an-ip, 2.2.2.2"], 2, None),
    ],
)
def test_nth_from_right(lines: list[str], index: int, chosen: str | None) -> None:
    found = nth_from_right("198.51.100.1", _xff(*lines), index)
    assert (str(found) if found is not None else None) == chosen
