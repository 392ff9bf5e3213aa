"""The addresses `[network]` relies on as other machines: gateways (default and per route) and
name servers. The fleet check makes sure none of them is a fleet host's own address."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capabilities.network.topology import layer3_of, layer3_path, topology
from kvmfleet.capability import HostContext, Peer


def peers(ctx: HostContext) -> Iterator[Peer]:
    net = ctx.host.network
    topo = topology(net)
    for name in topo.kind:
        l3 = layer3_of(net, name, topo)
        if l3 is None:
            continue
        base = layer3_path(name, topo)
        for index, gateway in enumerate(l3.gateways):
            yield Peer("gateway", gateway, (*base, "gateways", index))
        for index, route in enumerate(l3.routes):
            if route.gateway is not None:
                yield Peer("gateway", route.gateway, (*base, "routes", index, "gateway"))
    for index, server in enumerate(net.dns):
        yield Peer("name server", server, ("network", "dns", index))
