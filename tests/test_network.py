"""The network capability: inventory -> systemd-networkd units, the derived-MAC rule, fleet-unique
identities, warnings, and the VM test's inventory (checks/network/)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import DATA, REPO, copy_fleet, run_cli
from kvmfleet.capabilities import REGISTRY
from kvmfleet.capabilities import network as cap
from kvmfleet.capability import HostContext
from kvmfleet.generate import build
from kvmfleet.model import Host
from kvmfleet.problems import Severity

CHECKS = REPO / "checks" / "network"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChhW7FE3vJp5dpC2LOVbP50kn6XI6Qa8SjfTyX4HXtz admin@example.net"
HEAD = (
    '[host]\nstate_version = "26.05"\n[boot]\nloader = "grub"\n[disk]\ndevice = "/dev/sda"\n'
    f'table = "msdos"\n[ssh]\nauthorized_keys = ["{KEY}"]\n'
)
GOOD = sorted(p.name for p in (DATA / "good").glob("network-*") if p.is_dir())


def _fleet(tmp_path: Path, **hosts: str) -> Path:
    for name, network in hosts.items():
        directory = tmp_path / "hosts" / name
        directory.mkdir(parents=True)
        (directory / "host.toml").write_text(HEAD + network)
    return tmp_path


def _settings(root: Path, name: str) -> dict[str, Any]:
    (result,) = [r for r in build(root).hosts if r.name == name]
    return result.settings


def _host(network: str) -> Host:
    return Host.model_validate(tomllib.loads(HEAD + network))


def _findings(network: str, name: str = "a") -> list[str]:
    ctx = HostContext(name, _host(network))
    return [
        f"{'warning: ' if f.severity is Severity.WARNING else ''}{'.'.join(map(str, f.path))}: "
        f"{f.message}"
        for f in cap.findings(ctx)
    ]


# --- the demo fleet ------------------------------------------------------------------------------


def test_kvm01_nics_are_named_by_permanent_mac() -> None:
    units = _settings(REPO, "kvm01")["systemd"]["network"]
    assert units["links"]["10-p9p1"] == {
        "matchConfig": {"PermanentMACAddress": "14:fe:b5:c6:62:e0"},
        "linkConfig": {"Name": "p9p1"},
    }
    assert set(units["links"]) == {"10-p9p1", "10-p10p1", "10-san0", "10-san1"}


def test_kvm01_bond_has_the_fixed_mac_and_its_options() -> None:
    units = _settings(REPO, "kvm01")["systemd"]["network"]
    assert units["netdevs"]["10-bond0"] == {
        "netdevConfig": {"Kind": "bond", "Name": "bond0", "MACAddress": "fe:80:12:04:6d:6f"},
        "bondConfig": {
            "Mode": "802.3ad",
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
    units = _settings(REPO, "kvm01")["systemd"]["network"]
    assert units["netdevs"]["10-cloudbr0"]["netdevConfig"] == {
        "Kind": "bridge",
        "Name": "cloudbr0",
        "MACAddress": cap.derived_mac("kvm01", "cloudbr0"),
    }
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
    san0 = _settings(REPO, "kvm01")["systemd"]["network"]["networks"]["10-san0"]
    assert san0["networkConfig"]["Address"] == ["10.1.0.21/24"]
    assert san0["networkConfig"]["LinkLocalAddressing"] == "no"
    assert san0["linkConfig"] == {"MTUBytes": 9000}


def test_networkd_replaces_scripted_networking_and_dns_comes_from_site() -> None:
    networking = _settings(REPO, "kvm02")["networking"]
    assert networking["useNetworkd"] is True
    assert networking["useDHCP"] is False
    assert networking["nameservers"] == ["2a00:f10:113:1::53", "10.0.10.53"]
    assert networking["search"] == ["cloud.example.net"]


def test_a_host_without_interfaces_gets_dhcp_everywhere() -> None:
    s = _settings(REPO, "x1carbon")
    assert s["networking"]["useNetworkd"] is True
    assert s["networking"]["useDHCP"] is True
    assert "systemd" not in s


def test_every_unit_sorts_before_the_nixos_and_systemd_defaults() -> None:
    for host in ("kvm01", "kvm02"):
        units = _settings(REPO, host)["systemd"]["network"]
        for kind in ("links", "netdevs", "networks"):
            for name in units[kind]:
                assert name.startswith(cap.UNIT_PREFIX)
                assert name < "40-" < "99-default"


def test_demo_identities_are_claimed_with_their_toml_paths() -> None:
    (kvm01,) = [r for r in build(REPO).hosts if r.name == "kvm01"]
    ctx = HostContext("kvm01", kvm01.host)
    claimed = {(i.kind, i.value): i.path for i in cap.identities(ctx)}
    assert claimed[("MAC address", "14:fe:b5:c6:62:e0")] == ("network", "links", "p9p1")
    assert claimed[("MAC address", "fe:80:12:04:6d:6f")] == (
        "network",
        "bonds",
        "bond0",
        "hwaddress",
    )
    assert claimed[("IP address", "2a00:f10:113:1::21")] == (
        "network",
        "bridges",
        "cloudbr0",
        "addresses",
        1,
    )
    assert claimed[("IP address", "10.1.0.22")] == ("network", "interfaces", "san1", "addresses", 0)
    assert all(kind in ("MAC address", "IP address") for kind, _ in claimed)


def test_the_capability_is_registered() -> None:
    (network,) = [c for c in REGISTRY if c.name == "network"]
    assert network.tables == ("network",)
    assert network.settings is cap.settings


def test_new_host_clears_the_network_identities(demo_fleet: Path) -> None:
    result = run_cli("new", "kvm03", "--like", "kvm01", root=demo_fleet)
    assert result.code == 0, result.err
    for key in (
        "network.links.p9p1",
        "network.bridges.cloudbr0.addresses[0]",
        "network.interfaces.san1.addresses[0]",
    ):
        assert f"  {key}: cleared" in result.out
    # A bond's MAC becomes the one kvmfleet derives for the new host.
    assert "  network.bonds.bond0.hwaddress: given a fresh unique value" in result.out
    assert (
        f'hwaddress = "{cap.derived_mac("kvm03", "bond0")}"'
        in (demo_fleet / "hosts/kvm03/host.toml").read_text()
    )


# --- the derived MAC -------------------------------------------------------------------------------


def test_derived_mac_known_values() -> None:
    # docs/network.md shows this computation; a change of rule changes every host's MACs.
    assert cap.derived_mac("kvm03", "bond0") == "26:53:23:9b:13:db"
    assert hashlib.sha256(b"kvmfleet/kvm03/bond0").hexdigest()[:12] == "2753239b13db"
    assert cap.derived_mac("kvm01", "cloudbr0") == "02:e9:0f:3c:db:ed"


@given(
    host=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
    interface=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", fullmatch=True),
)
def test_derived_mac_is_deterministic_unicast_and_local(host: str, interface: str) -> None:
    mac = cap.derived_mac(host, interface)
    assert mac == cap.derived_mac(host, interface)
    assert len(mac) == 17 and mac == mac.lower()
    assert not cap.is_multicast(mac) and cap.is_locally_administered(mac)
    assert cap.derived_mac(host + "x", interface) != mac


def test_bond_without_hwaddress_gets_the_derived_mac(tmp_path: Path) -> None:
    root = _fleet(
        tmp_path,
        kvm03='[network.links]\np1 = "02:00:00:00:00:01"\n[network.bonds.bond0]\nslaves = ["p1"]\n'
        'dhcp = "yes"\n',
    )
    netdev = _settings(root, "kvm03")["systemd"]["network"]["netdevs"]["10-bond0"]
    assert netdev["netdevConfig"]["MACAddress"] == "26:53:23:9b:13:db"


# --- settings of other shapes ----------------------------------------------------------------------


def test_addresses_routes_dhcp_and_router_advertisements(tmp_path: Path) -> None:
    root = _fleet(
        tmp_path,
        a="""
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
""",
    )
    networks = _settings(root, "a")["systemd"]["network"]["networks"]
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


def test_active_backup_bond_marks_its_primary_slave(tmp_path: Path) -> None:
    root = _fleet(
        tmp_path,
        a="""
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
""",
    )
    units = _settings(root, "a")["systemd"]["network"]
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


def test_only_interfaces_with_addresses_count_for_wait_online(tmp_path: Path) -> None:
    """systemd-networkd-wait-online waits for every interface not `RequiredForOnline = "no"`; one
    without addresses (a slave with its cable out, an empty bridge) would never get there."""
    root = _fleet(
        tmp_path,
        a="""
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
""",
    )
    networks = _settings(root, "a")["systemd"]["network"]["networks"]
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
        for name, unit in _settings(root, host)["systemd"]["network"]["networks"].items():
            config = unit["networkConfig"]
            addressed = bool(config.get("Address")) or config.get("DHCP", "no") != "no"
            addressed = addressed or config.get("IPv6AcceptRA") is True
            required = unit.get("linkConfig", {}).get("RequiredForOnline")
            assert required == (None if addressed else "no"), (host, name, unit)


def test_a_host_without_any_reachable_interface_is_an_error() -> None:
    unreachable = (
        "network: no interface has an address, DHCP or IPv6 router advertisements: the host would "
        "be unreachable (declaring interfaces turns NixOS's DHCP on every NIC off); give the "
        "management interface addresses, dhcp or accept_ra"
    )
    links = '[network.links]\nlan0 = "02:00:00:00:00:01"\nlan1 = "02:00:00:00:00:02"\n'
    unreachable += " (DHCPv6 without accept_ra needs an IPv6 gateway or route)"
    assert _findings(links) == [unreachable]
    assert _findings(links + '[network.bridges.br0]\nports = ["lan0"]\n') == [unreachable]
    for reachable in (
        'dhcp = "ipv4"',
        'dhcp = "ipv6"\naccept_ra = true',
        'dhcp = "ipv6"\ngateways = ["fe80::1"]',
        'dhcp = "ipv6"\nroutes = [{ destination = "2001:db8::/32", gateway = "fe80::1" }]',
        "accept_ra = true",
        'addresses = ["192.0.2.10/24"]',
    ):
        assert _findings(links + f"[network.interfaces.lan1]\n{reachable}\n") == []
    # DHCPv6 without router advertisements: a /128 and no route to anyone.
    assert _findings(links + '[network.interfaces.lan1]\ndhcp = "ipv6"\n') == [unreachable]
    # No interface declared: NixOS's DHCP on every NIC (the laptop).
    assert _findings('[network]\ndns = ["192.0.2.53"]\n') == []


def test_interface_names_are_every_table_of_network() -> None:
    net = _host("""
[network.links]
lan0 = "02:00:00:00:00:01"
[network.bonds.bond0]
slaves = ["lan0"]
[network.vlans.vlan10]
parent = "bond0"
id = 10
[network.bridges.br0]
ports = ["vlan10"]
dhcp = "yes"
[network.interfaces.san9]
mtu = 9000
""").network
    assert cap.interface_names(net) == {"lan0", "bond0", "vlan10", "br0", "san9"}


def test_gateways_reachable_through_dhcp_or_link_local_are_accepted() -> None:
    assert (
        _findings("""
[network.links]
lan0 = "02:00:00:00:00:01"
[network.interfaces.lan0]
addresses = ["2001:db8::2/64"]
dhcp = "ipv4"
gateways = ["192.0.2.1", "fe80::1"]
""")
        == []
    )


@st.composite
def _ipv4_subnet_and_gateway(
    draw: st.DrawFn,
) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Address]:
    """An interface address in a subnet and a gateway, often on the subnet's edges or inside it."""
    prefix = draw(st.integers(min_value=8, max_value=32))
    network = ipaddress.IPv4Network(f"{draw(st.ip_addresses(v=4))}/{prefix}", strict=False)
    edges = st.sampled_from([network.network_address, network.broadcast_address])
    inside = st.integers(0, network.num_addresses - 1).map(lambda k: network.network_address + k)
    address = draw(inside)
    gateway = draw(st.one_of(edges, inside, st.ip_addresses(v=4), st.just(address)))
    return ipaddress.IPv4Interface(f"{address}/{prefix}"), gateway


@settings(max_examples=300)
@given(_ipv4_subnet_and_gateway())
def test_gateway_rule_agrees_with_ipaddress(
    case: tuple[ipaddress.IPv4Interface, ipaddress.IPv4Address],
) -> None:
    iface, gateway = case
    network = (
        f'[network.links]\nlan0 = "02:00:00:00:00:01"\n[network.interfaces.lan0]\n'
        f'addresses = ["{iface}"]\ngateways = ["{gateway}"]\n'
    )
    try:
        _host(network)
    except ValidationError:
        assume(False)  # an address class the model rejects itself (model/types.py)
    subnet = iface.network
    edge = subnet.prefixlen < 31 and gateway in (subnet.network_address, subnet.broadcast_address)
    ok = gateway in subnet and gateway != iface.ip and not edge
    event("gateway on the edge" if edge else "gateway inside" if gateway in subnet else "outside")
    found = _findings(network)
    assert (found == []) == ok, found
    if edge and gateway != iface.ip:
        assert "not a router's address" in found[0], found


def test_gateway_on_a_31_may_be_either_address() -> None:
    for address, gateway in (("10.0.0.1/31", "10.0.0.0"), ("10.0.0.0/31", "10.0.0.1")):
        found = _findings(
            f'[network.links]\nlan0 = "02:00:00:00:00:01"\n[network.interfaces.lan0]\n'
            f'addresses = ["{address}"]\ngateways = ["{gateway}"]\n'
        )
        assert found == []


@given(st.binary(min_size=6, max_size=6))
def test_mac_validation_accepts_any_six_octets(octets: bytes) -> None:
    text = ":".join(f"{b:02X}" for b in octets)
    host = _host(f'[network.links]\nlan0 = "{text}"\n')
    assert host.network.links["lan0"] == text.lower()
    problems = _findings(
        f'[network.links]\nlan0 = "{text}"\n[network.interfaces.lan0]\ndhcp = "yes"\n'
    )
    assert bool(problems) == (octets[0] & 1 == 1 or octets == bytes(6))


# --- warnings (valid inventories) -----------------------------------------------------------------


@pytest.mark.parametrize("case", GOOD)
def test_good_inventory_is_accepted_with_exactly_its_warnings(case: str, tmp_path: Path) -> None:
    src = DATA / "good" / case
    root = copy_fleet(src, tmp_path / case)
    expected = [line for line in (src / "expected").read_text().splitlines() if line.strip()]
    result = run_cli("check", root=root)
    assert result.code == 0, result.err
    assert result.err.splitlines() == expected


def test_network_corpus_covers_the_rules() -> None:
    bad = [p for p in (DATA / "bad").glob("network-*") if p.is_dir()]
    assert len(bad) >= 40
    assert GOOD


# --- the VM test's inventory -------------------------------------------------------------------------


def test_vm_test_inventory_generated_files_are_up_to_date() -> None:
    result = run_cli("generate", "--check", root=CHECKS)
    assert result.code == 0, (
        result.out + result.err + "\nrun: kvmfleet generate --root checks/network"
    )


def test_vm_test_inventory_matches_the_test_driver() -> None:
    """checks/network.nix puts lan0 on vlan 1 and lan1 on vlan 2; the driver numbers nodes in name
    order and gives their NICs 52:54:00:12:<vlan>:<node>."""
    hosts = sorted(p.parent.name for p in CHECKS.glob("hosts/*/host.toml"))
    assert hosts == ["lacp1", "lacp2"]
    for node, name in enumerate(hosts, start=1):
        links = tomllib.loads((CHECKS / "hosts" / name / "host.toml").read_text())["network"][
            "links"
        ]
        assert links == {f"lan{vlan - 1}": f"52:54:00:12:{vlan:02x}:{node:02x}" for vlan in (1, 2)}
    fixed = tomllib.loads((CHECKS / "hosts" / "lacp1" / "host.toml").read_text())
    assert "hwaddress" in fixed["network"]["bonds"]["bond0"]
    derived = tomllib.loads((CHECKS / "hosts" / "lacp2" / "host.toml").read_text())
    assert "hwaddress" not in derived["network"]["bonds"]["bond0"]


def test_vm_test_modules_evaluate_to_the_intended_settings(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    root = copy_fleet(CHECKS, tmp_path / "network")
    for result in build(root).hosts:
        evaluated = nix_eval(root / "hosts" / result.name / "generated.nix")
        assert evaluated == json.loads(json.dumps(result.settings))


# --- DHCPv6, MTU inheritance, routes, link-local, firewall (review fixes) -------------------------

LAN = '[network.links]\nlan0 = "02:00:00:00:00:01"\nlan1 = "02:00:00:00:00:02"\n'


def _units(tmp_path: Path, network: str) -> dict[str, Any]:
    units: dict[str, Any] = _settings(_fleet(tmp_path, a=network), "a")["systemd"]["network"]
    return units


def test_dhcpv6_without_router_advertisements_solicits(tmp_path: Path) -> None:
    """networkd starts DHCPv6 only on an RA's M/O flag unless [DHCPv6] WithoutRA= is set."""
    networks = _units(
        tmp_path,
        LAN + '[network.interfaces.lan0]\ndhcp = "ipv6"\ngateways = ["fe80::1"]\n'
        '[network.interfaces.lan1]\ndhcp = "yes"\naccept_ra = true\n',
    )["networks"]
    assert networks["10-lan0"]["dhcpV6Config"] == {"WithoutRA": "solicit"}
    assert "dhcpV6Config" not in networks["10-lan1"]


def test_vlans_and_bridges_get_the_inherited_mtu_explicitly(tmp_path: Path) -> None:
    """The kernel copies a parent's MTU to a VLAN only at creation: the units set it."""
    networks = _units(
        tmp_path,
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


def test_on_link_routes_need_their_family_and_a_destination_is_routed_once() -> None:
    base = LAN + '[network.interfaces.lan0]\naddresses = ["192.0.2.10/24"]\n'
    assert _findings(base + 'routes = [{ destination = "::/0" }]\n') == [
        'network.interfaces.lan0.routes.0.destination: "::/0" is an on-link IPv6 route (no '
        "gateway), but this interface has no IPv6 address, DHCP or router advertisements"
    ]
    assert _findings(base + 'routes = [{ destination = "198.51.100.0/24" }]\n') == []
    twice = (
        base
        + 'routes = [{ destination = "198.51.100.0/24", metric = 5 }]\n'
        + '[network.interfaces.lan1]\ndhcp = "ipv4"\n'
        + 'routes = [{ destination = "198.51.100.0/24", metric = 5 }]\n'
    )
    assert _findings(twice) == [
        'network.interfaces.lan1.routes.0.destination: "198.51.100.0/24" with metric 5 is '
        "already routed by network.interfaces.lan0.routes[0]: give one of them another metric"
    ]
    assert _findings(twice.replace("metric = 5 }]\n[", "metric = 6 }]\n[")) == []


def test_the_duplicate_default_route_is_the_metricless_route_not_the_gateway() -> None:
    network = (
        LAN + '[network.interfaces.lan0]\naddresses = ["2001:db8:1::2/64"]\n'
        'routes = [{ destination = "::/0", gateway = "2001:db8:1::1" }]\n'
        '[network.bridges.br0]\nports = ["lan1"]\naddresses = ["2001:db8:2::2/64"]\n'
        'gateways = ["2001:db8:2::1"]\n'
    )
    (problem,) = _findings(network)
    assert problem.startswith("network.interfaces.lan0.routes.0: a second IPv6 default route")
    assert "(the first is network.bridges.br0.gateways[0])" in problem


@pytest.mark.parametrize(("guests", "warned"), [(1021, False), (1022, True)])
def test_a_bridge_takes_at_most_1023_ports(guests: int, warned: bool) -> None:
    network = (
        LAN + '[network.bridges.br0]\nports = ["lan0", "lan1"]\naddresses = ["192.0.2.1/24"]\n'
    )
    head = HEAD.replace("[host]\n", f"[host]\nmax_guests = {guests}\n")
    host = Host.model_validate(tomllib.loads(head + network))
    found = [f.message for f in cap.findings(HostContext("a", host))]
    assert bool(found) == warned
    if warned:
        assert "takes at most 1023 (BR_MAX_PORTS is 1024, port number 0 is reserved)" in found[0]


def test_link_local_addresses_are_not_fleet_identities() -> None:
    network = (
        LAN + "[network.interfaces.lan0]\n"
        'addresses = ["192.0.2.10/24", "169.254.0.1/16", "fe80::1/64", "2001:db8::10/64"]\n'
    )
    ips = [
        i.value for i in cap.identities(HostContext("a", _host(network))) if i.kind == "IP address"
    ]
    assert ips == ["192.0.2.10", "2001:db8::10"]


def test_link_local_name_servers_need_a_zone() -> None:
    assert _findings('[network]\ndns = ["169.254.169.253", "fd00::53"]\n') == []
    assert _findings('[network]\ndns = ["192.0.2.53", "fe80::53"]\n') == [
        "network.dns.1: fe80::53 is an IPv6 link-local address: it is reachable only through a "
        "named interface (a zone), which networking.nameservers cannot give; use a global or "
        "unique local address"
    ]


@pytest.mark.parametrize(
    ("interface", "trusted", "locked_out"),
    [
        ('addresses = ["2001:db8::10/64"]', '"10.0.10.0/24"', 6),
        ('dhcp = "ipv6"\naccept_ra = true', '"10.0.10.0/24"', 6),
        ('dhcp = "ipv4"', '"2001:db8::/64"', 4),
        ('dhcp = "yes"', '"2001:db8::/64"', None),
        ('addresses = ["2001:db8::10/64"]', '"10.0.10.0/24", "2001:db8::/64"', None),
    ],
)
def test_trusted_networks_must_include_a_family_of_the_host(
    interface: str, trusted: str, locked_out: int | None
) -> None:
    network = (
        f"[firewall]\ntrusted_networks = [{trusted}]\n"
        + LAN
        + f"[network.interfaces.lan0]\n{interface}\n"
    )
    expected = (
        []
        if locked_out is None
        else [
            f"firewall.trusted_networks: contains no IPv{locked_out} network, but the host has "
            f"only IPv{locked_out} addresses (static, DHCP or router advertisements): SSH and the "
            "management ports would be unreachable (the firewall accepts them only from "
            "trusted_networks)"
        ]
    )
    assert _findings(network) == expected
    # Without declared interfaces the host has DHCP in both families.
    assert _findings(f"[firewall]\ntrusted_networks = [{trusted}]\n") == []
    # A disabled firewall ignores the list (warning).
    disabled = network.replace("[firewall]\n", "[firewall]\nenable = false\n")
    assert _findings(disabled) == [
        "warning: firewall.trusted_networks: is ignored while the firewall is disabled "
        "(enable = false): SSH and the management ports are open to every network, not only these"
    ]
