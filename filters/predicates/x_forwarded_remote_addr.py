"""XForwardedRemoteAddr predicate: SCG's X-Forwarded-For address check, `maxTrustedIndex` places from the right.

With `maxTrustedIndex: n` the address checked is the n-th X-Forwarded-For entry counted from the right (1 = the
right-most, the one the nearest proxy appended), or the left-most when there are fewer entries; without
X-Forwarded-For it is the socket peer. As in SCG, n must be at least 1.

SECURITY: an X-Forwarded-For entry is only as trustworthy as the proxy that appended it. Sluicegate drops the
header unless the socket peer is in `trusted_proxies`, so without trusted proxies this predicate sees the socket
peer. Behind trusted proxies, set n to the number of proxy hops that append to the header: any entry further
left was written by the client and can be spoofed. RemoteAddr walks the trusted hops itself and needs no count.
"""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, CidrSet, CidrSources, ComponentConfig, Exchange, PredicateSpec, nth_from_right


class XForwardedRemoteAddrConfig(ComponentConfig):
    sources: CidrSources
    max_trusted_index: int = Field(
        1,
        description="Which X-Forwarded-For entry is the client, counted from the right (1 = right-most): the "
        "number of trusted proxy hops that append to the header. Further left is client-written.",
        ge=1,
        le=64,
    )


class XForwardedRemoteAddrPredicate:
    __slots__ = ("sources", "index")

    def __init__(self, sources: CidrSet, index: int) -> None:
        self.sources, self.index = sources, index

    def __call__(self, exchange: Exchange) -> bool:
        # SECURITY: entries left of `index` are client-written; see the module docstring for when to trust this.
        return self.sources.contains(nth_from_right(exchange.client_host, exchange.headers, self.index))


def build(config: XForwardedRemoteAddrConfig, context: BuildContext) -> XForwardedRemoteAddrPredicate:
    return XForwardedRemoteAddrPredicate(CidrSet.parse(config.sources), config.max_trusted_index)


SPEC = PredicateSpec(
    name="XForwardedRemoteAddr",
    config=XForwardedRemoteAddrConfig,
    build=build,
    summary="Matches when the X-Forwarded-For address `maxTrustedIndex` places from the right (the socket peer "
    "without the header) is in one of `sources`.",
    example={"sources": ["192.168.1.1/24"], "maxTrustedIndex": 1},
    shortcut=("sources",),
    shortcut_type="gather_list",
    status="stable",
)
