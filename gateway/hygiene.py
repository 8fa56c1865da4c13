"""Header hygiene at the proxy's two edges: hop-by-hop fields, Connection-named fields, forwarding headers.

RFC 9110 §7.6.1: a proxy removes `Connection` and every field it names, plus the classic hop-by-hop set, in both
directions. Forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP) from a peer that is not a trusted proxy
are removed on arrival and written afresh on the way out (CVE-2025-41235 in SCG was trusting them from anyone); so
are the `proxy_only_headers` setting's client-IP and URL-override fields (gateway/server/request.py `EdgeFields`).
"""

from __future__ import annotations

from gateway.exchange import Exchange, ExchangeKey
from gateway.headers import Headers, check_value, connection_tokens_of
from gateway.routing.route import DEFAULT_PORTS

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)
#: Set by PreserveHostHeader-style filters: send the client's Host instead of the upstream's authority.
PRESERVE_HOST: ExchangeKey[bool] = ExchangeKey("preserve-host")
#: The protocol a client asked to upgrade to (lower-cased `Upgrade` value), recorded before hygiene strips it.
UPGRADE: ExchangeKey[str] = ExchangeKey("upgrade")


def strip_hop_by_hop(headers: Headers) -> None:
    """Remove hop-by-hop fields and every field named in `Connection` (in place).

    One scan; the list is rebuilt only when there is something to remove (most messages carry at most a
    `Connection: keep-alive`)."""
    found = False
    named: set[str] = set()
    for lower, _, value in headers.raw():
        if lower in HOP_BY_HOP:
            found = True
            if lower == "connection":
                named |= connection_tokens_of([value])
    if not found:
        return
    named.discard("host")  # never let a client make us lose Host; it is rewritten on the way out anyway
    headers.remove_many(HOP_BY_HOP | named if named else HOP_BY_HOP)


def _for_node(host: str) -> str:
    return f'"[{host}]"' if ":" in host else host


def _append(headers: Headers, name: str, value: str, present: set[str]) -> None:
    if name.lower() not in present:
        headers.add(name, value)  # the usual case: nothing to append to (untrusted values were dropped)
        return
    headers.set(name, ", ".join([*headers.get_all(name), value]))


def add_forwarding_headers(exchange: Exchange, headers: Headers) -> None:
    """Append this hop to X-Forwarded-For/Proto/Host/Port (+Prefix when the path was stripped) and Forwarded.

    Untrusted values were already removed on arrival, so appending never carries a client's claim forward.
    """
    client = exchange.client_host
    host = exchange.host
    proto = exchange.scheme
    present = {lower for lower, _, _ in headers.raw() if lower in FORWARDING}
    _append(headers, "X-Forwarded-For", client, present)
    _append(headers, "X-Forwarded-Proto", proto, present)
    if host:
        _append(headers, "X-Forwarded-Host", host, present)
    _append(headers, "X-Forwarded-Port", _port_of(host, proto), present)
    prefix = _stripped_prefix(exchange.original_path, exchange.path)
    if prefix:
        _append(headers, "X-Forwarded-Prefix", prefix, present)
    node = f"for={_for_node(client)};proto={proto}"
    if host:
        node += f';host="{host}"'
    _append(headers, "Forwarded", node, present)


def forwarding_values(exchange: Exchange) -> list[tuple[str, str, str]]:
    """This hop's (lower-cased name, name, value) for X-Forwarded-For/Proto/Host/Port(/Prefix) and Forwarded.

    The serialiser appends each to what a trusted proxy sent, or adds it; untrusted values were removed on arrival,
    so appending never carries a client's claim forward. Only the host and the prefix can come from a filter.
    """
    client = exchange.client_host
    host = check_value(exchange.host) if exchange.host else ""
    proto = exchange.scheme
    values = [("x-forwarded-for", "X-Forwarded-For", client), ("x-forwarded-proto", "X-Forwarded-Proto", proto)]
    if host:
        values.append(("x-forwarded-host", "X-Forwarded-Host", host))
    values.append(("x-forwarded-port", "X-Forwarded-Port", _port_of(host, proto)))
    prefix = _stripped_prefix(exchange.original_path, exchange.path)
    if prefix:
        values.append(("x-forwarded-prefix", "X-Forwarded-Prefix", check_value(prefix)))
    node = f'for={_for_node(client)};proto={proto};host="{host}"' if host else f"for={_for_node(client)};proto={proto}"
    values.append(("forwarded", "Forwarded", node))
    return values


def _port_of(host: str, proto: str) -> str:
    if host.startswith("["):
        _, _, rest = host.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        _, sep, port = host.partition(":")
        port = port if sep else ""
    return port if port.isdigit() else str(DEFAULT_PORTS.get(proto, 80))


def _stripped_prefix(original: str, current: str) -> str:
    """What a path filter removed from the front (SCG's X-Forwarded-Prefix rule), or ""."""
    before, after = original.rstrip("/"), current.rstrip("/")
    if before == after or not before.endswith(after):
        return ""
    return before[: len(before) - len(after)] if after else before
