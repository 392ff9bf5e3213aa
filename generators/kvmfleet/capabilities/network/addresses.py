"""The host's own addresses, for checks of other capabilities (where a service may listen)."""

from __future__ import annotations

from dataclasses import dataclass

from kvmfleet.capabilities.network.topology import layer3_of, topology
from kvmfleet.model.network import Network
from kvmfleet.model.types import ip_interface


@dataclass(frozen=True)
class OwnAddresses:
    """`static`: every address [network] gives the host (link-local ones included). `dynamic`:
    some come from DHCP or router advertisements (or NixOS's DHCP on every NIC, when no interface
    is declared), so an address outside `static` may still be the host's."""

    static: frozenset[str]
    dynamic: bool


def own_addresses(net: Network) -> OwnAddresses:
    if not net.declares_interfaces():
        return OwnAddresses(frozenset(), True)
    topo = topology(net)
    static: set[str] = set()
    dynamic = False
    for name in topo.kind:
        l3 = layer3_of(net, name, topo)
        if l3 is None:
            continue
        static.update(str(ip_interface(a).ip) for a in l3.addresses)
        dynamic = dynamic or l3.dhcp != "no" or l3.accept_ra
    return OwnAddresses(frozenset(static), dynamic)
