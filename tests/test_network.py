"""The network capability's settings: inventory -> systemd-networkd units (links, netdevs, networks),
for the demo fleet and for other shapes of network."""

from __future__ import annotations

from typing import Any

from conftest import REPO, fleet_settings, host_toml, settings_of
from kvmfleet.capabilities import network as cap

CHECKS = REPO / "checks" / "network"
LAN = '[network.links]\nlan0 = "02:00:00:00:00:01"\nlan1 = "02:00:00:00:00:02"\n'


def _units(network: str) -> dict[str, Any]:
    units: dict[str, Any] = settings_of(host_toml(network))["systemd"]["network"]
    return units


# --- the demo fleet ------------------------------------------------------------------------------


def test_kvm01_nics_are_named_by_permanent_mac() -> None:
    units = fleet_settings(REPO, "kvm01")["systemd"]["network"]
    assert units["links"]["10-p9p1"] == {
        "matchConfig": {"PermanentMACAddress": "14:fe:b5:c6:62:e0"},
        "linkConfig": {"Name": "p9p1"},
    }
    assert set(units["links"]) == {"10-p9p1", "10-p10p1", "10-san0", "10-san1"}


def test_kvm01_bond_has_the_fixed_mac_and_its_options() -> None:
    units = fleet_settings(REPO, "kvm01")["systemd"]["network"]
    assert units["netdevs"]["10-bond0"] == {
        "netdevConfig": {"Kind": "bond", "Name": "bond0", "MACAddress": "fe:80:12:04:6d:6f"},
        "bondConfig": {
            "Mode": "802.3ad",
            # the LACP system id the switch sees: the bond's MAC, whatever the slaves do
            "AdActorSystem": "fe:80:12:04:6d:6f",
            "LACPTransmitRate": "fast",
            "TransmitHashPolicy": "layer3+4",
            "MIIMonitorSec": "100ms",
            "UpDelaySec": "200ms",
            "DownDelaySec": "200ms",
        },
    }
    for slave in ("p9p1", "p10p1"):
        assert units["networks"][f"10-{slave}"] == {
            "matchConfig": {"Name": slave},
            "networkConfig": {"Bond": "bond0", "LinkLocalAddressing": "no"},
            "linkConfig": {"RequiredForOnline": "no"},
        }
    # bond0: port of cloudbr0, parent of vlan200, no address of its own
    assert units["networks"]["10-bond0"]["networkConfig"] == {
        "Bridge": "cloudbr0",
        "VLAN": ["vlan200"],
        "LinkLocalAddressing": "no",
    }


def test_kvm01_bridges_have_fixed_macs_and_the_addresses() -> None:
    units = fleet_settings(REPO, "kvm01")["systemd"]["network"]
    # cloudbr0's port is bond0, whose MAC is fixed: the bridge has the bond's MAC
    assert units["netdevs"]["10-cloudbr0"]["netdevConfig"] == {
        "Kind": "bridge",
        "Name": "cloudbr0",
        "MACAddress": "fe:80:12:04:6d:6f",
    }
    assert units["netdevs"]["10-cloudbr1"]["netdevConfig"]["MACAddress"] == cap.derived_mac(
        "kvm01", "cloudbr1"
    )
    assert units["netdevs"]["10-cloudbr0"]["bridgeConfig"] == {"STP": False}
    assert units["networks"]["10-cloudbr0"]["networkConfig"] == {
        "Address": ["10.0.10.21/24", "2a00:f10:113:1::21/64"],
        "Gateway": ["10.0.10.1", "2a00:f10:113:1::1"],
        "DHCP": "no",
        "LinkLocalAddressing": "ipv6",
        "IPv6AcceptRA": False,
        "ConfigureWithoutCarrier": True,
    }
    # cloudbr1 (guests only): up, but no host address at all, not even IPv6 link-local
    assert units["networks"]["10-cloudbr1"] == {
        "matchConfig": {"Name": "cloudbr1"},
        "networkConfig": {"DHCP": "no", "LinkLocalAddressing": "no", "IPv6AcceptRA": False},
        "linkConfig": {"RequiredForOnline": "no"},
    }
    assert units["netdevs"]["10-vlan200"] == {
        "netdevConfig": {"Kind": "vlan", "Name": "vlan200"},
        "vlanConfig": {"Id": 200},
    }
    assert units["networks"]["10-vlan200"]["networkConfig"]["Bridge"] == "cloudbr1"


def test_kvm01_storage_nics_get_ipv4_only_and_jumbo_frames() -> None:
    san0 = fleet_settings(REPO, "kvm01")["systemd"]["network"]["networks"]["10-san0"]
    assert san0["networkConfig"]["Address"] == ["10.1.0.21/24"]
    assert san0["networkConfig"]["LinkLocalAddressing"] == "no"
    assert san0["linkConfig"] == {"MTUBytes": 9000}


def test_networkd_replaces_scripted_networking_and_dns_comes_from_site() -> None:
    networking = fleet_settings(REPO, "kvm02")["networking"]
    assert networking["useNetworkd"] is True
    assert networking["useDHCP"] is False
    assert networking["nameservers"] == ["2a00:f10:113:1::53", "10.0.10.53"]
    assert networking["search"] == ["cloud.example.net"]


def test_a_laptop_uses_the_networks_resolvers_and_the_inventorys_only_as_fallback() -> None:
    s = fleet_settings(REPO, "x1carbon")
    assert "nameservers" not in s["networking"]
    assert s["services"]["resolved"]["settings"]["Resolve"] == {
        "FallbackDNS": ["2a00:f10:113:1::53", "10.0.10.53"]
    }
    assert s["networking"]["search"] == ["cloud.example.net"]
    # the same [network] on a server: the global resolvers
    server = settings_of(host_toml(network={"dns": ["192.0.2.53"]}))
    assert server["networking"]["nameservers"] == ["192.0.2.53"]
    assert "services" not in server
    laptop = settings_of(host_toml(host={"roles": ["laptop"]}, network={"dns": ["192.0.2.53"]}))
    assert "nameservers" not in laptop["networking"]
    assert laptop["services"]["resolved"]["settings"]["Resolve"]["FallbackDNS"] == ["192.0.2.53"]


def test_a_host_without_interfaces_gets_dhcp_everywhere() -> None:
    s = fleet_settings(REPO, "x1carbon")
    assert s["networking"]["useNetworkd"] is True
    assert s["networking"]["useDHCP"] is True
    assert "systemd" not in s


def test_every_unit_sorts_before_the_nixos_and_systemd_defaults() -> None:
    for host in ("kvm01", "kvm02"):
        units = fleet_settings(REPO, host)["systemd"]["network"]
        for kind in ("links", "netdevs", "networks"):
            for name in units[kind]:
                assert name.startswith(cap.UNIT_PREFIX)
                assert name < "40-" < "99-default"


# --- other shapes ----------------------------------------------------------------------------------


def test_addresses_routes_dhcp_and_router_advertisements() -> None:
    network = """
[network.links]
lan0 = "02:00:00:00:00:01"
lan1 = "02:00:00:00:00:02"

[network.interfaces.lan0]
addresses = ["192.0.2.10/24"]
gateways = ["192.0.2.1", "fe80::1"]
dhcp = "ipv6"
accept_ra = true
routes = [
  { destination = "198.51.100.0/24", gateway = "192.0.2.254", metric = 50 },
  { destination = "203.0.113.0/24" },
]

[network.interfaces.lan1]
dhcp = "yes"
mtu = 1280
"""
    networks = settings_of(host_toml(network))["systemd"]["network"]["networks"]
    assert networks["10-lan0"] == {
        "matchConfig": {"Name": "lan0"},
        "routes": [
            {"Destination": "198.51.100.0/24", "Gateway": "192.0.2.254", "Metric": 50},
            {"Destination": "203.0.113.0/24"},
        ],
        "networkConfig": {
            "Address": ["192.0.2.10/24"],
            "Gateway": ["192.0.2.1", "fe80::1"],
            "DHCP": "ipv6",
            "LinkLocalAddressing": "ipv6",
            "IPv6AcceptRA": True,
            "IPv6PrivacyExtensions": False,
            "ConfigureWithoutCarrier": True,
        },
    }
    assert networks["10-lan1"] == {
        "matchConfig": {"Name": "lan1"},
        "networkConfig": {"DHCP": "yes", "LinkLocalAddressing": "ipv6", "IPv6AcceptRA": False},
        # DHCPv6 without RAs: networkd would wait for an RA's M flag that never comes
        "dhcpV6Config": {"WithoutRA": "solicit"},
        "linkConfig": {"MTUBytes": 1280},
    }


def test_active_backup_bond_marks_its_primary_slave() -> None:
    network = """
[network.links]
lan0 = "02:00:00:00:00:01"
lan1 = "02:00:00:00:00:02"
unused = "02:00:00:00:00:03"

[network.bonds.bond0]
slaves = ["lan0", "lan1"]
mode = "active-backup"
primary = "lan1"
miimon_ms = 50
downdelay_ms = 100
addresses = ["192.0.2.10/24"]
mtu = 9000
"""
    units = settings_of(host_toml(network))["systemd"]["network"]
    assert units["networks"]["10-lan1"]["networkConfig"]["PrimarySlave"] is True
    assert "PrimarySlave" not in units["networks"]["10-lan0"]["networkConfig"]
    assert units["netdevs"]["10-bond0"]["bondConfig"] == {
        "Mode": "active-backup",
        "MIIMonitorSec": "50ms",
        "DownDelaySec": "100ms",
    }
    assert units["networks"]["10-bond0"]["linkConfig"] == {"MTUBytes": 9000}
    # a named NIC that nothing uses is renamed, and otherwise left alone
    assert "10-unused" in units["links"] and "10-unused" not in units["networks"]


def test_every_bond_is_kept_at_its_mac_through_slave_loss_fixed_or_derived() -> None:
    assert fleet_settings(REPO, "kvm01")["services"]["bond-macs"] == {
        "enable": True,
        "bonds": {"bond0": "fe:80:12:04:6d:6f"},
    }
    network = LAN + (
        'lan2 = "02:00:00:00:00:03"\n'
        '[network.bonds.bond0]\nslaves = ["lan0", "lan1"]\naddresses = ["192.0.2.10/24"]\n'
        '[network.bonds.bond1]\nslaves = ["lan2"]\nmode = "active-backup"\n'
        'hwaddress = "02:00:00:00:01:01"\n'
    )
    s = settings_of(host_toml(network, host={"roles": ["laptop"]}, network={"dns": ["192.0.2.53"]}))
    derived = cap.derived_mac("a", "bond0")
    assert s["services"]["bond-macs"] == {
        "enable": True,
        "bonds": {"bond0": derived, "bond1": "02:00:00:00:01:01"},
    }
    # beside a laptop's resolver settings, not instead of them
    assert s["services"]["resolved"]["settings"]["Resolve"]["FallbackDNS"] == ["192.0.2.53"]
    netdevs = s["systemd"]["network"]["netdevs"]
    # 802.3ad (the default mode): the LACP system id is the bond's MAC; the kernel refuses
    # ad_actor_system in any other mode
    assert netdevs["10-bond0"]["bondConfig"]["AdActorSystem"] == derived
    assert "AdActorSystem" not in netdevs["10-bond1"]["bondConfig"]
    # no bond, no bond-macs
    assert "bond-macs" not in settings_of(host_toml(LAN)).get("services", {})


def test_only_interfaces_with_addresses_count_for_wait_online() -> None:
    """systemd-networkd-wait-online waits for every interface not `RequiredForOnline = "no"`; one
    without addresses (a slave with its cable out, an empty bridge) would never get there."""
    network = """
[network.links]
lan0 = "02:00:00:00:00:01"
lan1 = "02:00:00:00:00:02"
trunk0 = "02:00:00:00:00:03"
dhcp0 = "02:00:00:00:00:04"
ra0 = "02:00:00:00:00:05"

[network.bonds.bond0]
slaves = ["lan0", "lan1"]

[network.vlans.vlan10]
parent = "bond0"
id = 10
addresses = ["192.0.2.10/24"]

[network.vlans.vlan20]
parent = "trunk0"
id = 20

[network.bridges.guests]

[network.interfaces.dhcp0]
dhcp = "ipv4"

[network.interfaces.ra0]
accept_ra = true
"""
    networks = settings_of(host_toml(network))["systemd"]["network"]["networks"]
    required = {
        name.removeprefix("10-"): unit.get("linkConfig", {}).get("RequiredForOnline")
        for name, unit in networks.items()
    }
    assert required == {
        "lan0": "no",  # bond slaves
        "lan1": "no",
        "trunk0": "no",  # only a VLAN parent
        "bond0": "no",  # only a VLAN parent
        "vlan20": "no",  # no address
        "guests": "no",  # a bridge without ports never has carrier
        "vlan10": None,  # addresses: networkd's default
        "dhcp0": None,
        "ra0": None,
    }


def test_demo_and_vm_test_hosts_wait_only_for_addressed_interfaces() -> None:
    for root, host in ((REPO, "kvm01"), (REPO, "kvm02"), (CHECKS, "lacp1"), (CHECKS, "lacp2")):
        for name, unit in fleet_settings(root, host)["systemd"]["network"]["networks"].items():
            config = unit["networkConfig"]
            addressed = bool(config.get("Address")) or config.get("DHCP", "no") != "no"
            addressed = addressed or config.get("IPv6AcceptRA") is True
            required = unit.get("linkConfig", {}).get("RequiredForOnline")
            assert required == (None if addressed else "no"), (host, name, unit)


def test_dhcpv6_without_router_advertisements_solicits() -> None:
    """networkd starts DHCPv6 only on an RA's M/O flag unless [DHCPv6] WithoutRA= is set."""
    networks = _units(
        LAN + '[network.interfaces.lan0]\ndhcp = "ipv6"\ngateways = ["fe80::1"]\n'
        '[network.interfaces.lan1]\ndhcp = "yes"\naccept_ra = true\n',
    )["networks"]
    assert networks["10-lan0"]["dhcpV6Config"] == {"WithoutRA": "solicit"}
    assert "dhcpV6Config" not in networks["10-lan1"]


def test_vlans_and_bridges_get_the_inherited_mtu_explicitly() -> None:
    """The kernel copies a parent's MTU to a VLAN only at creation: the units set it."""
    networks = _units(
        LAN + '[network.bonds.bond0]\nslaves = ["lan0", "lan1"]\nmtu = 9000\n'
        '[network.vlans.vlan10]\nparent = "bond0"\nid = 10\naddresses = ["192.0.2.10/24"]\n'
        '[network.vlans.vlan20]\nparent = "bond0"\nid = 20\nmtu = 1500\n'
        '[network.vlans.vlan30]\nparent = "vlan10"\nid = 30\n'
        '[network.bridges.br0]\nports = ["vlan20"]\n'
        '[network.bridges.br1]\nports = ["vlan30"]\n'
        "[network.bridges.br2]\n",
    )["networks"]
    mtu = {name: unit.get("linkConfig", {}).get("MTUBytes") for name, unit in networks.items()}
    assert mtu == {
        "10-lan0": None,  # the bond sets its slaves' MTU
        "10-lan1": None,
        "10-bond0": 9000,
        "10-vlan10": 9000,  # inherited from bond0, set explicitly
        "10-vlan20": 1500,
        "10-vlan30": 9000,  # from vlan10, from bond0
        "10-br0": None,  # its port's 1500: the kernel's default, nothing to set
        "10-br1": 9000,
        "10-br2": None,
    }
