"""Networking (`[network]`): NICs renamed by permanent MAC, bonds with a fixed MAC, VLANs, bridges,
static addresses, gateways and routes, as systemd-networkd units (`systemd.network.*`).

Unit names: `10-<interface>` for every .link, .netdev and .network file. They sort before NixOS's
own units (`40-<name>` from `networking.interfaces`, `99-ethernet-default-dhcp`, systemd's
`99-default.link`); for .link and .network files the first match wins, so kvmfleet's units decide.

A host that declares no interfaces at all (no links, bonds, VLANs, bridges, interfaces) gets
networkd with NixOS's DHCP defaults: DHCP on every Ethernet interface and Wi-Fi station.
docs/network.md documents every key and the derived-MAC rule.
"""

from kvmfleet.capabilities.network.peers import peers
from kvmfleet.capabilities.network.rules import findings, identities
from kvmfleet.capabilities.network.topology import (
    UNIT_PREFIX,
    derived_mac,
    interface_names,
    is_locally_administered,
    is_multicast,
)
from kvmfleet.capabilities.network.units import settings
from kvmfleet.capability import Capability

__all__ = [
    "CAPABILITY",
    "UNIT_PREFIX",
    "derived_mac",
    "findings",
    "identities",
    "interface_names",
    "is_locally_administered",
    "is_multicast",
    "peers",
    "settings",
]

CAPABILITY = Capability("network", ("network",), settings, findings, identities, peers=peers)
