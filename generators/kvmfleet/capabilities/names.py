"""Interface names a host's inventory defines, for capabilities that refer to them."""

from __future__ import annotations

from kvmfleet.model import Host


def interface_names(host: Host) -> set[str]:
    net = host.network
    return set(net.links) | set(net.bonds) | set(net.vlans) | set(net.bridges) | set(net.interfaces)
