"""The network capability's findings: reachability, gateways, routes, MACs, name servers, bridge
ports, trusted networks; and the good inventories whose only output is their warnings."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import DATA, copy_fleet, findings_of, host_of, host_toml, run_cli
from kvmfleet.capabilities import network as cap
from kvmfleet.capability import HostContext

GOOD = sorted(p.name for p in (DATA / "good").glob("network-*") if p.is_dir())

LAN = '[network.links]\nlan0 = "02:00:00:00:00:01"\nlan1 = "02:00:00:00:00:02"\n'


def _findings(network: str) -> list[str]:
    return findings_of(host_toml(network), "network")


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
    net = host_of(
        host_toml("""
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
""")
    ).network
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
        host_of(host_toml(network))
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
    host = host_of(host_toml(f'[network.links]\nlan0 = "{text}"\n'))
    assert host.network.links["lan0"] == text.lower()
    problems = _findings(
        f'[network.links]\nlan0 = "{text}"\n[network.interfaces.lan0]\ndhcp = "yes"\n'
    )
    assert bool(problems) == (octets[0] & 1 == 1 or octets == bytes(6))


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
    host = host_of(host_toml(network, host={"max_guests": guests}))
    found = [f.message for f in cap.findings(HostContext("a", host))]
    assert bool(found) == warned
    if warned:
        assert "takes at most 1023 (BR_MAX_PORTS is 1024, port number 0 is reserved)" in found[0]


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
