"""The systemd-networkd units (`systemd.network.links/netdevs/networks`) of a host."""

from __future__ import annotations

from kvmfleet.capabilities.network.topology import (
    UNIT_PREFIX,
    Topology,
    dhcp6_without_ra,
    families,
    inherited_mtu,
    layer3_of,
    mtu_resolver,
    netdev_mac,
    topology,
)
from kvmfleet.capability import HostContext, Settings
from kvmfleet.model.network import Bond, Interface, Layer3, Network

# --- settings ------------------------------------------------------------------------------------


def settings(ctx: HostContext) -> Settings:
    net = ctx.host.network
    declared = net.declares_interfaces()
    networking: Settings = {"useNetworkd": True, "useDHCP": not declared}
    out: Settings = {"networking": networking}
    if net.dns and "laptop" in ctx.host.host.roles:
        # A roaming laptop asks the resolvers of the network it is on; the inventory's (usually
        # the site's, unreachable from elsewhere) only replace resolved's public fallback servers.
        out["services"] = {"resolved": {"settings": {"Resolve": {"FallbackDNS": list(net.dns)}}}}
    elif net.dns:
        networking["nameservers"] = list(net.dns)
    if net.search:
        networking["search"] = list(net.search)
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
    if net.bonds:
        # The kernel replaces a bond's MAC when its last slave leaves, and networkd does not set
        # it again (docs/network.md, "When every slave leaves"): modules/bond-macs.nix does.
        out.setdefault("services", {})["bond-macs"] = {
            "enable": True,
            "bonds": {name: netdev_mac(ctx, name) for name in net.bonds},
        }
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
            "netdevConfig": {"Kind": "bond", "Name": name, "MACAddress": netdev_mac(ctx, name)},
            "bondConfig": _bond_config(bond, netdev_mac(ctx, name)),
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
                "MACAddress": netdev_mac(ctx, name),
            },
            "bridgeConfig": {"STP": bridge.stp},
        }
    return out


def _bond_config(bond: Bond, mac: str) -> Settings:
    config: Settings = {"Mode": bond.mode}
    if bond.mode == "802.3ad":
        # The LACP system id the switch sees. Unset, the kernel takes the bond's MAC when the first
        # slave is enslaved, which is a slave's own after the bond lost every slave; setting the
        # bond's MAC again later does not change it (bond_3ad_initialize). The kernel accepts it
        # only in 802.3ad mode.
        config["AdActorSystem"] = mac
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
    mtu_of = mtu_resolver(net, topo)
    for name in topo.kind:
        l3 = layer3_of(net, name, topo)
        master = topo.master(name)
        vlans = topo.vlans_on.get(name, [])
        if topo.kind[name] == "link" and l3 is None and master is None and not vlans:
            continue  # a named NIC that nothing uses: networkd leaves it alone
        unit = _network_unit(
            name,
            l3 or Interface(),
            topo,
            vlans,
            primary=name in primaries,
            mtu=inherited_mtu(net, topo, name, mtu_of),
        )
        out[f"{UNIT_PREFIX}{name}"] = unit
    return out


def _network_unit(
    name: str, l3: Layer3, topo: Topology, vlans: list[str], *, primary: bool, mtu: int | None
) -> Settings:
    """`mtu`: the MTU a VLAN or bridge without `mtu` inherits from its lower interfaces, set
    explicitly so that it does not depend on the order networkd creates and configures them."""
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
    enslaved = topo.master(name) is not None
    speaks: set[int] = set() if enslaved else families(l3)
    if not speaks:
        # No address of its own (a bond slave, a bridge port, a layer-2-only bridge, bond or
        # VLAN): not part of "online". Every state it could be required to reach ("enslaved",
        # "carrier", the default "degraded") needs full carrier, which a slave with its cable out
        # ("no-carrier"), a bond port with such a slave ("degraded-carrier") or a bridge without
        # ports never has: networkd would call the host only "partial"ly online, and
        # systemd-networkd-wait-online before systemd 256 waited its whole timeout and failed
        # (systemd#22713, #29506). Interfaces with addresses or DHCP keep networkd's default.
        link["RequiredForOnline"] = "no"
    if enslaved:
        # A slave or port carries no addresses of its own, not even IPv6 link-local ones.
        network["LinkLocalAddressing"] = "no"
    else:
        if l3.addresses:
            network["Address"] = list(l3.addresses)
        if l3.gateways:
            network["Gateway"] = list(l3.gateways)
        network["DHCP"] = l3.dhcp
        network["LinkLocalAddressing"] = "ipv6" if 6 in speaks else "no"
        network["IPv6AcceptRA"] = l3.accept_ra
        if dhcp6_without_ra(l3):
            # networkd starts DHCPv6 only when an RA asks for it (M or O flag); RAs are off here.
            unit["dhcpV6Config"] = {"WithoutRA": "solicit"}
        if l3.accept_ra:
            network["IPv6PrivacyExtensions"] = False  # servers keep stable addresses
        if l3.addresses:
            # Static addresses exist without carrier, so services can bind them at boot, and a
            # link flap does not remove them.
            network["ConfigureWithoutCarrier"] = True
        if l3.routes:
            unit["routes"] = [_route(r.destination, r.gateway, r.metric) for r in l3.routes]
    if l3.mtu is not None:
        link["MTUBytes"] = l3.mtu
    elif mtu is not None:
        link["MTUBytes"] = mtu
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
