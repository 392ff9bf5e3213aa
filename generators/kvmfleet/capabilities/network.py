"""Networking (`[network]`): NICs renamed by permanent MAC, bonds with a fixed MAC, VLANs, bridges,
static addresses, gateways and routes, as systemd-networkd units (`systemd.network.*`).

Unit names: `10-<interface>` for every .link, .netdev and .network file. They sort before NixOS's
own units (`40-<name>` from `networking.interfaces`, `99-ethernet-default-dhcp`, systemd's
`99-default.link`); for .link and .network files the first match wins, so kvmfleet's units decide.

A host that declares no interfaces at all (no links, bonds, VLANs, bridges, interfaces) gets
networkd with NixOS's DHCP defaults: DHCP on every Ethernet interface and Wi-Fi station.
docs/network.md documents every key and the derived-MAC rule.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kvmfleet.capabilities.base import HostContext, Identity, Settings
from kvmfleet.model.network import Bond, Bridge, Interface, Layer3, Network
from kvmfleet.problems import Finding, KeyPath, error, format_keypath, quote, warning

UNIT_PREFIX = "10-"
DEFAULT_MTU = 1500
IPV6_MIN_MTU = 1280
BR_MAX_PORTS = 1024  # linux/net/bridge/br_private.h

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

# Kind of interface -> the [network] table that defines it, in the order names are claimed.
TABLES: tuple[tuple[str, str], ...] = (
    ("link", "links"),
    ("bond", "bonds"),
    ("VLAN", "vlans"),
    ("bridge", "bridges"),
)

_LACP_ONLY = ("802.3ad",)
_HASH_MODES = ("802.3ad", "balance-xor", "balance-tlb", "balance-alb")
_PRIMARY_MODES = ("active-backup", "balance-tlb", "balance-alb")
# Names the kernel gives NICs itself: udev's rename races with the kernel's (systemd.link(5)).
_KERNEL_NAME = re.compile(r"^eth\d+$")


# --- the derived MAC ------------------------------------------------------------------------------


def derived_mac(host: str, interface: str) -> str:
    """The MAC of a bond or bridge without `hwaddress`: the first six bytes of the SHA-256 of the
    UTF-8 text `kvmfleet/<host>/<interface>`, with the first byte's lowest bit cleared (unicast)
    and its second-lowest bit set (locally administered)."""
    octets = bytearray(hashlib.sha256(f"kvmfleet/{host}/{interface}".encode()).digest()[:6])
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def bond_mac(ctx: HostContext, name: str, bond: Bond) -> str:
    return bond.hwaddress or derived_mac(ctx.name, name)


def bridge_mac(ctx: HostContext, name: str, bridge: Bridge) -> str:
    return bridge.hwaddress or derived_mac(ctx.name, name)


def _first_octet(mac: str) -> int:
    return int(mac[:2], 16)


def is_multicast(mac: str) -> bool:
    return bool(_first_octet(mac) & 0x01)


def is_locally_administered(mac: str) -> bool:
    return bool(_first_octet(mac) & 0x02)


# --- topology ------------------------------------------------------------------------------------


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


def _layer3(net: Network, name: str, topo: Topology) -> Layer3 | None:
    """The addressing table of an interface: its own for bonds/VLANs/bridges, [network.interfaces]
    for links."""
    table = topo.table.get(name)
    if table == "links":
        return net.interfaces.get(name)
    if table is None:
        return None
    value: Layer3 = getattr(net, table)[name]
    return value


def _l3_path(name: str, topo: Topology) -> KeyPath:
    table = topo.table.get(name)
    return ("network", "interfaces" if table in (None, "links") else str(table), name)


def families(l3: Layer3) -> set[int]:
    """The IP versions an interface speaks: static addresses, DHCP, router advertisements."""
    found: set[int] = {ipaddress.ip_interface(a).version for a in l3.addresses}
    if l3.dhcp in ("yes", "ipv4"):
        found.add(4)
    if l3.dhcp in ("yes", "ipv6"):
        found.add(6)
    if l3.accept_ra:
        found.add(6)
    return found


def _has_l3(l3: Layer3) -> bool:
    return bool(l3.addresses or l3.gateways or l3.routes or l3.dhcp != "no" or l3.accept_ra)


# --- settings ------------------------------------------------------------------------------------


def settings(ctx: HostContext) -> Settings:
    net = ctx.host.network
    declared = net.declares_interfaces()
    networking: Settings = {"useNetworkd": True, "useDHCP": not declared}
    if net.dns:
        networking["nameservers"] = list(net.dns)
    if net.search:
        networking["search"] = list(net.search)
    out: Settings = {"networking": networking}
    if not declared:
        return out
    topo = topology(net)
    units: Settings = {}
    links = {f"{UNIT_PREFIX}{name}": _link_unit(name, mac) for name, mac in net.links.items()}
    if links:
        units["links"] = links
    netdevs = _netdevs(ctx)
    if netdevs:
        units["netdevs"] = netdevs
    networks = _networks(net, topo)
    if networks:
        units["networks"] = networks
    out["systemd"] = {"network": units}
    return out


def _link_unit(name: str, mac: str) -> Settings:
    # Match the permanent MAC: a bond slave takes the bond's MAC, so `MACAddress=` would not match.
    return {
        "matchConfig": {"PermanentMACAddress": mac},
        # Only the name: no alternative names that could collide with another NIC's chosen name.
        "linkConfig": {"Name": name},
    }


def _netdevs(ctx: HostContext) -> Settings:
    net = ctx.host.network
    out: Settings = {}
    for name, bond in net.bonds.items():
        out[f"{UNIT_PREFIX}{name}"] = {
            "netdevConfig": {"Kind": "bond", "Name": name, "MACAddress": bond_mac(ctx, name, bond)},
            "bondConfig": _bond_config(bond),
        }
    for name, vlan in net.vlans.items():
        out[f"{UNIT_PREFIX}{name}"] = {
            "netdevConfig": {"Kind": "vlan", "Name": name},
            "vlanConfig": {"Id": vlan.id},
        }
    for name, bridge in net.bridges.items():
        out[f"{UNIT_PREFIX}{name}"] = {
            "netdevConfig": {
                "Kind": "bridge",
                "Name": name,
                "MACAddress": bridge_mac(ctx, name, bridge),
            },
            "bridgeConfig": {"STP": bridge.stp},
        }
    return out


def _bond_config(bond: Bond) -> Settings:
    config: Settings = {"Mode": bond.mode}
    if bond.lacp_rate is not None:
        config["LACPTransmitRate"] = bond.lacp_rate
    if bond.xmit_hash_policy is not None:
        config["TransmitHashPolicy"] = bond.xmit_hash_policy
    config["MIIMonitorSec"] = f"{bond.miimon_ms}ms"
    if bond.updelay_ms is not None:
        config["UpDelaySec"] = f"{bond.updelay_ms}ms"
    if bond.downdelay_ms is not None:
        config["DownDelaySec"] = f"{bond.downdelay_ms}ms"
    if bond.min_links is not None:
        config["MinLinks"] = bond.min_links
    return config


def _networks(net: Network, topo: Topology) -> Settings:
    out: Settings = {}
    primaries = {b.primary for b in net.bonds.values() if b.primary is not None}
    for name in topo.kind:
        l3 = _layer3(net, name, topo)
        master = topo.master(name)
        vlans = topo.vlans_on.get(name, [])
        if topo.kind[name] == "link" and l3 is None and master is None and not vlans:
            continue  # a named NIC that nothing uses: networkd leaves it alone
        unit = _network_unit(name, l3 or Interface(), topo, vlans, primary=name in primaries)
        out[f"{UNIT_PREFIX}{name}"] = unit
    return out


def _network_unit(
    name: str, l3: Layer3, topo: Topology, vlans: list[str], *, primary: bool
) -> Settings:
    network: Settings = {}
    link: Settings = {}
    if name in topo.bond_of:
        network["Bond"] = topo.bond_of[name]
        if primary:
            network["PrimarySlave"] = True
    if name in topo.bridge_of:
        network["Bridge"] = topo.bridge_of[name]
    if vlans:
        network["VLAN"] = list(vlans)
    unit: Settings = {"matchConfig": {"Name": name}}
    if topo.master(name) is not None:
        # A slave or port carries no addresses of its own, not even IPv6 link-local ones.
        network["LinkLocalAddressing"] = "no"
        link["RequiredForOnline"] = "enslaved"
    else:
        speaks = families(l3)
        if l3.addresses:
            network["Address"] = list(l3.addresses)
        if l3.gateways:
            network["Gateway"] = list(l3.gateways)
        network["DHCP"] = l3.dhcp
        network["LinkLocalAddressing"] = "ipv6" if 6 in speaks else "no"
        network["IPv6AcceptRA"] = l3.accept_ra
        if l3.accept_ra:
            network["IPv6PrivacyExtensions"] = False  # servers keep stable addresses
        if l3.addresses:
            # Static addresses exist without carrier, so services can bind them at boot, and a
            # link flap does not remove them.
            network["ConfigureWithoutCarrier"] = True
        if not speaks:
            # Layer 2 only (e.g. a guest bridge): up, no host address, nothing to wait for but carrier.
            link["RequiredForOnline"] = "carrier"
        if l3.routes:
            unit["routes"] = [_route(r.destination, r.gateway, r.metric) for r in l3.routes]
    if l3.mtu is not None:
        link["MTUBytes"] = l3.mtu
    unit["networkConfig"] = network
    if link:
        unit["linkConfig"] = link
    return unit


def _route(destination: str, gateway: str | None, metric: int | None) -> Settings:
    route: Settings = {"Destination": destination}
    if gateway is not None:
        route["Gateway"] = gateway
    if metric is not None:
        route["Metric"] = metric
    return route


# --- identities ----------------------------------------------------------------------------------


def identities(ctx: HostContext) -> Iterator[Identity]:
    net = ctx.host.network
    for name, mac in net.links.items():
        yield Identity("MAC address", mac, ("network", "links", name))
    for name, bond in net.bonds.items():
        if bond.hwaddress is not None:
            yield Identity("MAC address", bond.hwaddress, ("network", "bonds", name, "hwaddress"))
    for name, bridge in net.bridges.items():
        if bridge.hwaddress is not None:
            yield Identity(
                "MAC address", bridge.hwaddress, ("network", "bridges", name, "hwaddress")
            )
    for table, name, l3 in _all_layer3(net):
        for index, address in enumerate(l3.addresses):
            value = str(ipaddress.ip_interface(address).ip)
            yield Identity("IP address", value, ("network", table, name, "addresses", index))


def _all_layer3(net: Network) -> Iterator[tuple[str, str, Layer3]]:
    """(table, name, addressing) of every interface that has an addressing table."""
    tables: tuple[tuple[str, Mapping[str, Layer3]], ...] = (
        ("bonds", net.bonds),
        ("vlans", net.vlans),
        ("bridges", net.bridges),
        ("interfaces", net.interfaces),
    )
    for table, entries in tables:
        for name, l3 in entries.items():
            yield table, name, l3


# --- findings ------------------------------------------------------------------------------------


def findings(ctx: HostContext) -> Iterator[Finding]:
    net = ctx.host.network
    topo = topology(net)
    yield from _names(net)
    yield from _link_findings(net)
    yield from _bond_findings(net, topo)
    yield from _bridge_findings(ctx, topo)
    yield from _vlan_findings(net, topo)
    yield from _interface_findings(net, topo)
    yield from _enslaved_findings(net, topo)
    yield from _address_findings(net, topo)
    yield from _default_route_findings(net, topo)
    yield from _mtu_findings(net, topo)


def _names(net: Network) -> Iterator[Finding]:
    first: dict[str, str] = {}
    for _, table in TABLES:
        for name in getattr(net, table):
            if name in first:
                yield error(
                    ("network", table, name),
                    f"{quote(name)} is already defined in [network.{first[name]}]; "
                    "interface names are unique on a host",
                )
            else:
                first[name] = table


def _mac_findings(path: KeyPath, mac: str, what: str) -> Iterator[Finding]:
    """`what`: "link" for a NIC's permanent MAC, else the kind of interface the MAC is set on."""
    if mac == "00:00:00:00:00:00":
        yield error(path, f"{quote(mac)} is the all-zero address, not a usable MAC address")
    elif is_multicast(mac):
        if what == "link":
            yield error(
                path,
                f"{quote(mac)} is a multicast address; a NIC's permanent MAC is unicast "
                "(the first octet is even)",
            )
        else:
            yield error(
                path,
                f"{quote(mac)} is a multicast address; a {what} needs a unicast MAC "
                '(the first octet even, e.g. "02:..." or "fe:...")',
            )
    elif what != "link" and not is_locally_administered(mac):
        yield warning(
            path,
            f"{quote(mac)} is universally administered (a vendor's range); a {what} should have a "
            'locally administered MAC (first octet with bit 1 set, e.g. "02:..." or "fe:...") '
            "so that it cannot clash with a NIC's",
        )


def _link_findings(net: Network) -> Iterator[Finding]:
    for name, mac in net.links.items():
        path: KeyPath = ("network", "links", name)
        yield from _mac_findings(path, mac, "link")
        if _KERNEL_NAME.match(name):
            yield warning(
                path,
                f"{quote(name)} is a name the kernel gives NICs itself: renaming a NIC to it races "
                'with the kernel at boot; choose another name (e.g. "lan0")',
            )


def _bond_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    claimed: dict[str, str] = {}
    for name, bond in net.bonds.items():
        base: KeyPath = ("network", "bonds", name)
        if bond.hwaddress is not None:
            yield from _mac_findings((*base, "hwaddress"), bond.hwaddress, "bond")
        seen: set[str] = set()
        for index, slave in enumerate(bond.slaves):
            path: KeyPath = (*base, "slaves", index)
            if slave in seen:
                yield error(path, f"{quote(slave)} is listed twice")
                continue
            seen.add(slave)
            kind = topo.kind.get(slave)
            if kind is None:
                yield error(path, f"{quote(slave)} is not defined in [network.links]")
            elif kind != "link":
                yield error(
                    path, f"{quote(slave)} is a {kind}, not a link: bonds enslave [network.links]"
                )
            elif slave in claimed:
                yield error(path, f"{quote(slave)} is already a slave of {claimed[slave]}")
            else:
                claimed[slave] = name
        yield from _bond_options(base, bond)


def _bond_options(base: KeyPath, bond: Bond) -> Iterator[Finding]:
    mode = bond.mode
    if bond.lacp_rate is not None and mode not in _LACP_ONLY:
        yield error((*base, "lacp_rate"), _only_modes(_LACP_ONLY, mode))
    if bond.min_links is not None:
        if mode not in _LACP_ONLY:
            yield error((*base, "min_links"), _only_modes(_LACP_ONLY, mode))
        elif bond.min_links > len(bond.slaves):
            yield error(
                (*base, "min_links"),
                f"{bond.min_links} is more than the bond's {len(bond.slaves)} slaves: "
                "the bond would never have carrier",
            )
    if bond.xmit_hash_policy is not None and mode not in _HASH_MODES:
        yield error((*base, "xmit_hash_policy"), _only_modes(_HASH_MODES, mode))
    if bond.primary is not None:
        if mode not in _PRIMARY_MODES:
            yield error((*base, "primary"), _only_modes(_PRIMARY_MODES, mode))
        elif bond.primary not in bond.slaves:
            yield error((*base, "primary"), f"{quote(bond.primary)} is not a slave of this bond")
    for key in ("updelay_ms", "downdelay_ms"):
        delay: int | None = getattr(bond, key)
        if delay is None:
            continue
        if bond.miimon_ms == 0:
            if delay:
                yield error((*base, key), "needs link monitoring: set miimon_ms above 0")
        elif delay % bond.miimon_ms:
            yield error((*base, key), f"{delay} is not a multiple of miimon_ms ({bond.miimon_ms})")
    if bond.miimon_ms == 0:
        yield warning(
            (*base, "miimon_ms"),
            "0 turns link monitoring off: traffic keeps going to a slave whose link failed",
        )


def _only_modes(modes: Sequence[str], mode: str) -> str:
    names = [quote(m) for m in modes]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    word = "mode" if len(names) == 1 else "modes"
    return f"only applies to {word} {listed} (this bond's mode is {quote(mode)})"


def _bridge_findings(ctx: HostContext, topo: Topology) -> Iterator[Finding]:
    net = ctx.host.network
    claimed: dict[str, str] = {}
    for name, bridge in net.bridges.items():
        base: KeyPath = ("network", "bridges", name)
        if bridge.hwaddress is not None:
            yield from _mac_findings((*base, "hwaddress"), bridge.hwaddress, "bridge")
        seen: set[str] = set()
        for index, port in enumerate(bridge.ports):
            path: KeyPath = (*base, "ports", index)
            kind = topo.kind.get(port)
            if port in seen:
                yield error(path, f"{quote(port)} is listed twice")
                continue
            seen.add(port)
            if kind is None:
                yield error(
                    path,
                    f"{quote(port)} is not defined under [network] (a bridge port is a link, "
                    "bond or VLAN)",
                )
            elif kind == "bridge":
                yield error(
                    path, f"{quote(port)} is a bridge: a bridge cannot be a port of a bridge"
                )
            elif port in topo.bond_of:
                yield error(
                    path,
                    f"{quote(port)} is a slave of {topo.bond_of[port]}: make "
                    f"{topo.bond_of[port]} the bridge port",
                )
            elif port in claimed:
                yield error(path, f"{quote(port)} is already a port of bridge {claimed[port]}")
            else:
                claimed[port] = name
        guests = ctx.host.host.max_guests
        if guests is not None and len(bridge.ports) + guests > BR_MAX_PORTS:
            yield warning(
                base,
                f"may need {len(bridge.ports) + guests} ports ({len(bridge.ports)} configured + "
                f"host.max_guests = {guests} guest NICs), but a Linux bridge takes at most "
                f"{BR_MAX_PORTS} (BR_MAX_PORTS)",
            )


def _vlan_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    seen: dict[tuple[str, int], str] = {}
    reported: set[frozenset[str]] = set()
    for name, vlan in net.vlans.items():
        path: KeyPath = ("network", "vlans", name, "parent")
        parent = vlan.parent
        if parent == name:
            yield error(path, "a VLAN cannot be its own parent")
            continue
        if parent not in topo.kind:
            yield error(
                path,
                f"{quote(parent)} is not defined under [network] (a VLAN's parent is a link, "
                "bond, bridge or VLAN)",
            )
            continue
        if parent in topo.bond_of:
            yield error(
                path,
                f"{quote(parent)} is a slave of {topo.bond_of[parent]}: put the VLAN on "
                f"{topo.bond_of[parent]}",
            )
            continue
        key = (parent, vlan.id)
        if key in seen:
            yield error(
                ("network", "vlans", name, "id"),
                f"VLAN {vlan.id} on {parent} is already defined as {seen[key]}",
            )
        else:
            seen[key] = name
        loop = _loop_through(name, net, topo)
        if loop is not None and frozenset(loop) not in reported:
            reported.add(frozenset(loop))
            yield error(
                path,
                f"{quote(parent)} is stacked on this VLAN: {' -> '.join([*loop, name])} is a loop",
            )


def _lowers(name: str, net: Network, topo: Topology) -> list[str]:
    """The interfaces `name` sits on (its parent, ports or slaves)."""
    table = topo.table.get(name)
    if table == "vlans":
        return [net.vlans[name].parent]
    if table == "bridges":
        return list(net.bridges[name].ports)
    if table == "bonds":
        return list(net.bonds[name].slaves)
    return []


def _loop_through(start: str, net: Network, topo: Topology) -> list[str] | None:
    """A path start -> ... -> start through parents/ports, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        name, path = stack.pop()
        for lower in _lowers(name, net, topo):
            if lower == start:
                return path
            if lower not in visited and lower in topo.kind:
                visited.add(lower)
                stack.append((lower, [*path, lower]))
    return None


def _interface_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    for name in net.interfaces:
        path: KeyPath = ("network", "interfaces", name)
        kind = topo.kind.get(name)
        if kind is None:
            yield error(path, f"{quote(name)} is not defined in [network.links]")
        elif kind != "link":
            yield error(
                path,
                f"{quote(name)} is a {kind}: its addresses and MTU go in "
                f"[network.{topo.table[name]}.{name}]",
            )
        elif name in topo.bond_of:
            yield error(
                path,
                f"{name} is a slave of {topo.bond_of[name]}: set addresses and MTU on "
                f"{topo.bond_of[name]}",
            )


_L3_KEYS = (
    ("addresses", "addresses"),
    ("gateways", "gateways"),
    ("routes", "routes"),
    ("dhcp", "DHCP"),
    ("accept_ra", "router advertisements"),
)


def _enslaved_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    """Bridge ports carry no addresses: they belong on the bridge. (Bond slaves have no table.)"""
    for name, bridge in topo.bridge_of.items():
        l3 = _layer3(net, name, topo)
        if l3 is None:
            continue
        base = _l3_path(name, topo)
        for key, what in _L3_KEYS:
            value = getattr(l3, key)
            if value and value != "no":
                yield error(
                    (*base, key),
                    f"{name} is a port of bridge {bridge}: configure {what} on {bridge}",
                )


def _reachable(gateway: IpAddr, l3: Layer3) -> str | None:
    """Why `gateway` cannot be a next hop of this interface, or None when it can."""
    version = gateway.version
    own = [ipaddress.ip_interface(a) for a in l3.addresses]
    same = [i for i in own if i.version == version]
    if any(i.ip == gateway for i in same):
        return f"{gateway} is an address of this interface itself"
    if any(gateway in i.network for i in same):
        return None
    speaks = families(l3)
    if version == 6 and gateway.is_link_local and 6 in speaks:
        return None
    dhcp = {4: ("yes", "ipv4"), 6: ("yes", "ipv6")}[version]
    if not same:
        if l3.dhcp in dhcp or (version == 6 and l3.accept_ra):
            return None  # the subnet comes from DHCP/RA: cannot be checked here
        return (
            f"{gateway} is an IPv{version} address, but this interface has no IPv{version} address"
        )
    subnets = ", ".join(str(i.network) for i in same)
    return f"{gateway} is not in a subnet of this interface ({subnets})"


def _address_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    for name in topo.kind:
        l3 = _layer3(net, name, topo)
        if l3 is None or topo.master(name) is not None:
            continue
        base = _l3_path(name, topo)
        for index, text in enumerate(l3.gateways):
            problem = _reachable(ipaddress.ip_address(text), l3)
            if problem:
                yield error((*base, "gateways", index), problem)
        routed: dict[tuple[str, int | None], int] = {}
        for index, route in enumerate(l3.routes):
            destination = ipaddress.ip_network(route.destination)
            key = (route.destination, route.metric)
            if key in routed:
                yield error(
                    (*base, "routes", index, "destination"),
                    f"{quote(route.destination)} is already routed by routes[{routed[key]}] "
                    "with the same metric",
                )
            routed.setdefault(key, index)
            if route.gateway is None:
                continue
            gateway = ipaddress.ip_address(route.gateway)
            path: KeyPath = (*base, "routes", index, "gateway")
            if gateway.version != destination.version:
                yield error(
                    path,
                    f"{gateway} is IPv{gateway.version}, but the destination {destination} is "
                    f"IPv{destination.version}",
                )
                continue
            problem = _reachable(gateway, l3)
            if problem:
                yield error(path, problem)


def _default_route_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    """At most one default route per family without an explicit metric, on the whole host."""
    first: dict[int, KeyPath] = {}
    for name in topo.kind:
        l3 = _layer3(net, name, topo)
        if l3 is None or topo.master(name) is not None:
            continue
        base = _l3_path(name, topo)
        candidates: list[tuple[int, KeyPath]] = [
            (ipaddress.ip_address(g).version, (*base, "gateways", i))
            for i, g in enumerate(l3.gateways)
        ]
        for index, route in enumerate(l3.routes):
            destination = ipaddress.ip_network(route.destination)
            if destination.prefixlen == 0 and route.metric is None:
                candidates.append((destination.version, (*base, "routes", index)))
        for version, path in candidates:
            if version in first:
                default = "0.0.0.0/0" if version == 4 else "::/0"
                yield error(
                    path,
                    f"a second IPv{version} default route (the first is "
                    f"{format_keypath(first[version])}); for more than one, use routes to "
                    f"{quote(default)} with distinct metrics",
                )
            else:
                first[version] = path


def _mtu_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    memo: dict[str, int] = {}

    def mtu_of(name: str, visiting: frozenset[str] = frozenset()) -> int:
        if name in memo:
            return memo[name]
        if name in visiting:
            return DEFAULT_MTU
        inner = visiting | {name}
        l3 = _layer3(net, name, topo)
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

    for name, vlan in net.vlans.items():
        if vlan.mtu is not None and vlan.parent in topo.kind and vlan.parent != name:
            parent_mtu = mtu_of(vlan.parent)
            if vlan.mtu > parent_mtu:
                yield error(
                    ("network", "vlans", name, "mtu"),
                    f"{vlan.mtu} is larger than the MTU of its parent {vlan.parent} "
                    f"({parent_mtu}); raise the parent's mtu too",
                )
    for name, bridge in net.bridges.items():
        if bridge.mtu is None:
            continue
        for port in bridge.ports:
            if port not in topo.kind or topo.kind[port] == "bridge":
                continue
            port_mtu = mtu_of(port)
            if bridge.mtu > port_mtu:
                yield error(
                    ("network", "bridges", name, "mtu"),
                    f"{bridge.mtu} is larger than the MTU of its port {port} ({port_mtu}); "
                    "raise the port's mtu too",
                )
    for name in topo.kind:
        l3 = _layer3(net, name, topo)
        if l3 is None or l3.mtu is None or l3.mtu >= IPV6_MIN_MTU:
            continue
        if 6 in families(l3) and topo.master(name) is None:
            yield error(
                (*_l3_path(name, topo), "mtu"),
                f"{l3.mtu} is below {IPV6_MIN_MTU}, the smallest MTU IPv6 works with, and this "
                "interface has IPv6",
            )
