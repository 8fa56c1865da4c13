"""RemoteAddr predicate: the client's address lies in one of the configured networks.

The client is the socket peer. Only when that peer is one of the gateway's `trusted_proxies` (settings) is
X-Forwarded-For read, from the right, skipping every hop that is itself a trusted proxy: the right-most address
no trusted proxy vouches for is the client. This is the safe form of SCG's swappable resolver: SCG's default reads
the socket peer only, and its `XForwardedRemoteAddressResolver.trustAll()` takes the left-most entry, which any
client can write. An entry that is not an IP address where the client should be means no match (fail closed).
"""

from __future__ import annotations

from gateway.api import (
    BuildContext,
    CidrSet,
    CidrSources,
    ComponentConfig,
    Exchange,
    PredicateSpec,
    client_behind_proxies,
)


class RemoteAddrConfig(ComponentConfig):
    sources: CidrSources


class RemoteAddrPredicate:
    __slots__ = ("sources", "trusted")

    def __init__(self, sources: CidrSet, trusted: CidrSet) -> None:
        self.sources, self.trusted = sources, trusted

    def __call__(self, exchange: Exchange) -> bool:
        # SECURITY: X-Forwarded-For counts only behind `trusted_proxies`, and only the hops they vouch for.
        client = client_behind_proxies(exchange.client_host, exchange.headers, self.trusted)
        return self.sources.contains(client)


def build(config: RemoteAddrConfig, context: BuildContext) -> RemoteAddrPredicate:
    return RemoteAddrPredicate(CidrSet.parse(config.sources), CidrSet(context.settings.trusted_proxies))


SPEC = PredicateSpec(
    name="RemoteAddr",
    config=RemoteAddrConfig,
    build=build,
    summary="Matches when the client address is in one of `sources`: the socket peer, or behind trusted proxies "
    "the right-most X-Forwarded-For address that is not one of them.",
    example={"sources": ["192.168.1.1/24", "10.0.0.7"]},
    shortcut=("sources",),
    shortcut_type="gather_list",
    status="stable",
)
