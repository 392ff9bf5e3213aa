"""Shared facts of a host's network: constants, the derived MAC rule, which interface is what."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from kvmfleet.capability import HostContext
from kvmfleet.model.network import Bridge, Layer3, Network
from kvmfleet.model.types import ip_address, ip_interface, ip_network
from kvmfleet.problems import KeyPath

UNIT_PREFIX = "10-"
DEFAULT_MTU = 1500
IPV6_MIN_MTU = 1280
BR_MAX_PORTS = 1024  # linux/net/bridge/br_private.h; port number 0 is reserved
BRIDGE_PORT_LIMIT = BR_MAX_PORTS - 1  # ports 1..1023: the most a bridge takes

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

# Kind of interface -> the [network] table that defines it, in the order names are claimed.
TABLES: tuple[tuple[str, str], ...] = (
    ("link", "links"),
    ("bond", "bonds"),
    ("VLAN", "vlans"),
    ("bridge", "bridges"),
)


# --- the derived MAC ------------------------------------------------------------------------------


def derived_mac(host: str, interface: str) -> str:
    """The MAC of a bond or bridge without `hwaddress`: the first six bytes of the SHA-256 of the
    UTF-8 text `kvmfleet/<host>/<interface>`, with the first byte's lowest bit cleared (unicast)
    and its second-lowest bit set (locally administered)."""
    octets = bytearray(hashlib.sha256(f"kvmfleet/{host}/{interface}".encode()).digest()[:6])
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def bond_port_mac(net: Network, bridge: Bridge) -> str | None:
    """The fixed `hwaddress` of the first port of `bridge` that is a bond with one, if any."""
    for port in bridge.ports:
        bond = net.bonds.get(port)
        if bond is not None and bond.hwaddress is not None:
            return bond.hwaddress
    return None


def netdev_mac(ctx: HostContext, name: str) -> str:
    """The MAC kvmfleet sets on bond or bridge `name`: its `hwaddress`; for a bridge without one
    whose port is a bond with a fixed MAC, that bond's (the host's addresses on the bridge then
    answer from the MAC the network was told about); otherwise derived."""
    net = ctx.host.network
    bond = net.bonds.get(name)
    if bond is not None:
        return bond.hwaddress or derived_mac(ctx.name, name)
    bridge = net.bridges.get(name)
    if bridge is not None:
        return bridge.hwaddress or bond_port_mac(net, bridge) or derived_mac(ctx.name, name)
    return derived_mac(ctx.name, name)


def _first_octet(mac: str) -> int:
    return int(mac[:2], 16)


def is_multicast(mac: str) -> bool:
    return bool(_first_octet(mac) & 0x01)


def is_locally_administered(mac: str) -> bool:
    return bool(_first_octet(mac) & 0x02)


# --- topology ------------------------------------------------------------------------------------


def interface_names(net: Network) -> set[str]:
    """Every interface name `[network]` defines: links, bonds, VLANs, bridges, and the names under
    [network.interfaces] (links, or an error of their own). Other capabilities (iSCSI ifaces,
    CloudStack NICs) check their references against this set."""
    names = {name for _, table in TABLES for name in getattr(net, table)}
    return names | set(net.interfaces)


@dataclass
class Topology:
    """Who is whose: the first claim of every relation (later, conflicting ones are findings)."""

    kind: dict[str, str] = field(default_factory=dict)  # name -> "link", "bond", "VLAN", "bridge"
    table: dict[str, str] = field(default_factory=dict)  # name -> "links", "bonds", ...
    bond_of: dict[str, str] = field(default_factory=dict)  # slave -> bond
    bridge_of: dict[str, str] = field(default_factory=dict)  # port -> bridge
    vlans_on: dict[str, list[str]] = field(default_factory=dict)  # parent -> VLANs

    def master(self, name: str) -> str | None:
        return self.bond_of.get(name) or self.bridge_of.get(name)


def topology(net: Network) -> Topology:
    topo = Topology()
    for kind, table in TABLES:
        for name in getattr(net, table):
            if name not in topo.kind:
                topo.kind[name] = kind
                topo.table[name] = table
    for bond_name, bond in net.bonds.items():
        if topo.table.get(bond_name) != "bonds":
            continue
        for slave in bond.slaves:
            if topo.kind.get(slave) == "link":
                topo.bond_of.setdefault(slave, bond_name)
    for bridge_name, bridge in net.bridges.items():
        if topo.table.get(bridge_name) != "bridges":
            continue
        for port in bridge.ports:
            if topo.kind.get(port) in ("link", "bond", "VLAN") and port not in topo.bond_of:
                topo.bridge_of.setdefault(port, bridge_name)
    for vlan_name, vlan in net.vlans.items():
        if topo.table.get(vlan_name) == "vlans" and vlan.parent in topo.kind:
            topo.vlans_on.setdefault(vlan.parent, []).append(vlan_name)
    return topo


def layer3_of(net: Network, name: str, topo: Topology) -> Layer3 | None:
    """The addressing table of an interface: its own for bonds/VLANs/bridges, [network.interfaces]
    for links."""
    table = topo.table.get(name)
    if table == "links":
        return net.interfaces.get(name)
    if table is None:
        return None
    value: Layer3 = getattr(net, table)[name]
    return value


def layer3_path(name: str, topo: Topology) -> KeyPath:
    table = topo.table.get(name)
    return ("network", "interfaces" if table in (None, "links") else str(table), name)


def families(l3: Layer3) -> set[int]:
    """The IP versions an interface speaks: static addresses, DHCP, router advertisements."""
    found: set[int] = {ip_interface(a).version for a in l3.addresses}
    if l3.dhcp in ("yes", "ipv4"):
        found.add(4)
    if l3.dhcp in ("yes", "ipv6"):
        found.add(6)
    if l3.accept_ra:
        found.add(6)
    return found


def dhcp6_without_ra(l3: Layer3) -> bool:
    """DHCPv6 is wanted but router advertisements are not accepted: networkd starts DHCPv6 only on
    an RA's M/O flag, so the unit asks it to solicit without one (`[DHCPv6] WithoutRA=solicit`)."""
    return l3.dhcp in ("yes", "ipv6") and not l3.accept_ra


def reachable_families(l3: Layer3) -> set[int]:
    """The IP versions over which an interface can be reached from other subnets or hosts. DHCPv6
    without router advertisements yields an address (a /128) but neither an on-link prefix nor a
    route: it counts only with an IPv6 gateway or route of the interface's own."""
    found = families(l3)
    if 6 in found and dhcp6_without_ra(l3):
        own = {ip_interface(a).version for a in l3.addresses}
        routed = any(ip_address(g).version == 6 for g in l3.gateways) or any(
            ip_network(r.destination).version == 6 for r in l3.routes
        )
        if 6 not in own and not routed:
            found.discard(6)
    return found


def mtu_resolver(net: Network, topo: Topology) -> Callable[[str], int]:
    """The MTU an interface ends with: its own `mtu`; else a bond slave's is its bond's, a VLAN's
    its parent's and a bridge's the smallest of its ports'; else the kernel's 1500. For VLANs and
    bridges without `mtu` the units set this inherited value explicitly (`MTUBytes=`): the kernel
    copies a parent's MTU to a VLAN only when creating it, so the result would depend on whether
    networkd raised the parent's MTU before or after."""
    memo: dict[str, int] = {}

    def mtu_of(name: str, visiting: frozenset[str] = frozenset()) -> int:
        if name in memo:
            return memo[name]
        if name in visiting:
            return DEFAULT_MTU
        inner = visiting | {name}
        l3 = layer3_of(net, name, topo)
        value: int
        if l3 is not None and l3.mtu is not None:
            value = l3.mtu
        elif name in topo.bond_of:
            value = mtu_of(topo.bond_of[name], inner)
        elif topo.table.get(name) == "vlans":
            value = mtu_of(net.vlans[name].parent, inner)
        elif topo.table.get(name) == "bridges":
            ports = [p for p in net.bridges[name].ports if p in topo.kind]
            value = min((mtu_of(p, inner) for p in ports), default=DEFAULT_MTU)
        else:
            value = DEFAULT_MTU
        memo[name] = value
        return value

    return lambda name: mtu_of(name)


def inherited_mtu(
    net: Network, topo: Topology, name: str, mtu_of: Callable[[str], int]
) -> int | None:
    """The MTU to set explicitly on a VLAN or bridge without `mtu` whose lower interfaces give it
    another MTU than the kernel's 1500; None otherwise."""
    if topo.table.get(name) not in ("vlans", "bridges"):
        return None
    l3 = layer3_of(net, name, topo)
    if l3 is None or l3.mtu is not None:
        return None
    value = mtu_of(name)
    return None if value == DEFAULT_MTU else value
