"""Validation of `[network]` (findings) and the values that must be unique in the fleet (identities)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence

from kvmfleet.capabilities.network.topology import (
    BR_MAX_PORTS,
    BRIDGE_PORT_LIMIT,
    IPV6_MIN_MTU,
    TABLES,
    IpAddr,
    Topology,
    derived_mac,
    families,
    is_locally_administered,
    is_multicast,
    layer3_of,
    layer3_path,
    mtu_resolver,
    netdev_mac,
    reachable_families,
    topology,
)
from kvmfleet.capability import IP_ADDRESS, HostContext, Identity, Renew
from kvmfleet.model.network import Bond, Bridge, Layer3, Network
from kvmfleet.model.types import ip_address, ip_interface, ip_network
from kvmfleet.problems import Finding, KeyPath, error, format_keypath, quote, warning

_LACP_ONLY = ("802.3ad",)
_HASH_MODES = ("802.3ad", "balance-xor", "balance-tlb", "balance-alb")
_PRIMARY_MODES = ("active-backup", "balance-tlb", "balance-alb")
# Names the kernel gives NICs itself: udev's rename races with the kernel's (systemd.link(5)).
_KERNEL_NAME = re.compile(r"^eth[0-9]+\Z")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- identities ----------------------------------------------------------------------------------


def identities(ctx: HostContext) -> Iterator[Identity]:
    net = ctx.host.network
    for name, mac in net.links.items():
        yield Identity("MAC address", mac, ("network", "links", name))
    # Every MAC the host will use counts, given or derived: a pinned hwaddress must not collide
    # with another host's derived one either.
    for table, virtual in (("bonds", net.bonds), ("bridges", net.bridges)):
        for name, iface in virtual.items():
            mac = netdev_mac(ctx, name)
            if isinstance(iface, Bridge) and mac in _bond_port_macs(net, iface):
                continue  # the MAC of its own bond: the bond claims it
            if iface.hwaddress is None:
                yield Identity("MAC address", mac, ("network", table, name), derived=True)
            else:
                path = ("network", table, name, "hwaddress")
                yield Identity("MAC address", mac, path, _derive_mac_for(name))
    for base, l3 in _addressed(net, topology(net)):
        for index, address in enumerate(l3.addresses):
            ip = ip_interface(address).ip
            if ip.is_link_local:
                continue  # fe80::/10 and 169.254.0.0/16 are per link: other hosts may use them too
            yield Identity(IP_ADDRESS, str(ip), (*base, "addresses", index))


def _bond_port_macs(net: Network, bridge: Bridge) -> set[str]:
    return {
        mac for port in bridge.ports if (mac := getattr(net.bonds.get(port), "hwaddress", None))
    }


def _derive_mac_for(interface: str) -> Renew:
    """A bond's or bridge's fixed MAC becomes the one kvmfleet derives for the new host."""

    def renew(like: str, name: str) -> str:
        return derived_mac(name, interface)

    return renew


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
    yield from _route_findings(net, topo)
    yield from _default_route_findings(net, topo)
    yield from _mtu_findings(net, topo)
    yield from _dns_findings(net)
    yield from _reachability_findings(net)
    yield from _firewall_findings(ctx, topo)


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
        if guests is not None and len(bridge.ports) + guests > BRIDGE_PORT_LIMIT:
            yield warning(
                base,
                f"may need {len(bridge.ports) + guests} ports ({len(bridge.ports)} configured + "
                f"host.max_guests = {guests} guest NICs), but a Linux bridge takes at most "
                f"{BRIDGE_PORT_LIMIT} (BR_MAX_PORTS is {BR_MAX_PORTS}, port number 0 is reserved)",
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
        l3 = layer3_of(net, name, topo)
        if l3 is None:
            continue
        base = layer3_path(name, topo)
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
    own = [ip_interface(a) for a in l3.addresses]
    same = [i for i in own if i.version == version]
    if any(i.ip == gateway for i in same):
        return f"{gateway} is an address of this interface itself"
    connected = [i for i in same if gateway in i.network]
    if any(_is_host_address(gateway, i.network) for i in connected):
        return None
    if connected:
        subnet = connected[0].network
        what = "network" if gateway == subnet.network_address else "broadcast"
        return f"{gateway} is the {what} address of {subnet}, not a router's address"
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


def _is_host_address(ip: IpAddr, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether `ip` (in `subnet`) can be a host's address there: not the network or broadcast
    address of an IPv4 subnet of /30 or wider (/31 and /32 have neither, RFC 3021)."""
    if subnet.version == 6 or subnet.prefixlen >= 31:
        return True
    return ip not in (subnet.network_address, subnet.broadcast_address)


def _address_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    for base, l3 in _addressed(net, topo):
        for index, text in enumerate(l3.gateways):
            problem = _reachable(ip_address(text), l3)
            if problem:
                yield error((*base, "gateways", index), problem)
        for index, route in enumerate(l3.routes):
            destination = ip_network(route.destination)
            if route.gateway is None:
                if destination.version not in families(l3):
                    yield error(
                        (*base, "routes", index, "destination"),
                        f"{quote(route.destination)} is an on-link IPv{destination.version} route "
                        "(no gateway), "
                        f"but this interface has no IPv{destination.version} address, DHCP or "
                        "router advertisements",
                    )
                continue
            gateway = ip_address(route.gateway)
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


def _addressed(
    net: Network, topo: Topology, *, ports: bool = False
) -> Iterator[tuple[KeyPath, Layer3]]:
    """(path, addressing table) of every interface that can carry addresses; with `ports`, also
    of bond slaves and bridge ports, whose addressing is an error of its own."""
    for name in topo.kind:
        l3 = layer3_of(net, name, topo)
        if l3 is not None and (ports or topo.master(name) is None):
            yield layer3_path(name, topo), l3


def _usable_route(l3: Layer3, destination: IpNetwork, gateway: str | None) -> bool:
    """Whether a route is not an error of its own (gateway or on-link family mismatch)."""
    if gateway is None:
        return destination.version in families(l3)
    return ip_address(gateway).version == destination.version


def _route_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    """A destination with a given metric is routed once on the whole host: the kernel refuses or
    replaces a second route to it with the same metric, even through another interface. (Default
    routes without metric are _default_route_findings'.)"""
    first: dict[tuple[IpNetwork, int | None], KeyPath] = {}
    for base, l3 in _addressed(net, topo):
        for index, route in enumerate(l3.routes):
            destination = ip_network(route.destination)
            if destination.prefixlen == 0 and route.metric is None:
                continue
            if not _usable_route(l3, destination, route.gateway):
                continue
            key = (destination, route.metric)
            path: KeyPath = (*base, "routes", index)
            if key in first:
                metric = "no metric" if route.metric is None else f"metric {route.metric}"
                yield error(
                    (*path, "destination"),
                    f"{quote(route.destination)} with {metric} is already routed by "
                    f"{format_keypath(first[key])}: give one of them another metric",
                )
            else:
                first[key] = path


def _default_route_findings(net: Network, topo: Topology) -> Iterator[Finding]:
    """At most one default route per family without an explicit metric, on the whole host. The
    `gateways` come first: a metric-less route to "0.0.0.0/0" or "::/0" is the second one."""
    first: dict[int, KeyPath] = {}
    candidates: list[tuple[int, KeyPath]] = []
    routes: list[tuple[int, KeyPath]] = []
    for base, l3 in _addressed(net, topo):
        candidates.extend(
            (ip_address(g).version, (*base, "gateways", i)) for i, g in enumerate(l3.gateways)
        )
        for index, route in enumerate(l3.routes):
            destination = ip_network(route.destination)
            if destination.prefixlen != 0 or route.metric is not None:
                continue
            if _usable_route(l3, destination, route.gateway):
                routes.append((destination.version, (*base, "routes", index)))
    for version, path in [*candidates, *routes]:
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
    mtu_of = mtu_resolver(net, topo)
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
    for base, l3 in _addressed(net, topo):
        if l3.mtu is not None and l3.mtu < IPV6_MIN_MTU and 6 in families(l3):
            yield error(
                (*base, "mtu"),
                f"{l3.mtu} is below {IPV6_MIN_MTU}, the smallest MTU IPv6 works with, and this "
                "interface has IPv6",
            )


def _dns_findings(net: Network) -> Iterator[Finding]:
    for index, text in enumerate(net.dns):
        ip = ip_address(text)
        if ip.version == 6 and ip.is_link_local:
            yield error(
                ("network", "dns", index),
                f"{ip} is an IPv6 link-local address: it is reachable only through a named "
                "interface (a zone), which networking.nameservers cannot give; use a global or "
                "unique local address",
            )


def _reachability_findings(net: Network) -> Iterator[Finding]:
    """Once [network] declares interfaces, NixOS's DHCP on every NIC is off (useDHCP = false): a
    host none of whose interfaces has an address, DHCP or router advertisements cannot be reached,
    not even over SSH to fix it. (An address on an interface that cannot carry one is an error of
    its own and counts here as an attempt.) DHCPv6 without router advertisements counts only with
    an IPv6 gateway or route (reachable_families)."""
    if not net.declares_interfaces():
        return
    if any(reachable_families(l3) for _, l3 in _addressed(net, topology(net), ports=True)):
        return
    yield error(
        ("network",),
        "no interface has an address, DHCP or IPv6 router advertisements: the host would be "
        "unreachable (declaring interfaces turns NixOS's DHCP on every NIC off); give the "
        "management interface addresses, dhcp or accept_ra (DHCPv6 without accept_ra needs an "
        "IPv6 gateway or route)",
    )


def _firewall_findings(ctx: HostContext, topo: Topology) -> Iterator[Finding]:
    """`[firewall] trusted_networks` limits SSH and the management ports to those networks: they
    must include one of an address family the host has (static, DHCP or RA; a host without
    declared interfaces has DHCP in both)."""
    firewall = ctx.host.firewall
    trusted = [ip_network(n) for n in firewall.trusted_networks]
    if not trusted:
        return
    path: KeyPath = ("firewall", "trusted_networks")
    if not firewall.enable:
        yield warning(
            path,
            "is ignored while the firewall is disabled (enable = false): SSH and the management "
            "ports are open to every network, not only these",
        )
        return
    net = ctx.host.network
    if net.declares_interfaces():
        host: set[int] = set()
        for _, l3 in _addressed(net, topo):
            host |= families(l3)
    else:
        host = {4, 6}
    if not host or any(n.version in host for n in trusted):
        return  # no family at all: _reachability_findings reports it
    (version,) = host  # one family: with both, any network is of one of them
    yield error(
        path,
        f"contains no IPv{version} network, but the host has only IPv{version} addresses "
        "(static, DHCP or router advertisements): SSH and the management ports would be "
        "unreachable (the firewall accepts them only from trusted_networks)",
    )
