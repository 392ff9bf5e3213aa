"""The network capability's fleet-unique values (NIC, bond and bridge MACs, IP addresses), how
`new --like` renews them, and the derived-MAC rule for bonds and bridges without `hwaddress`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, host_toml, identities_of, run_cli, settings_of
from kvmfleet.capabilities import network as cap
from kvmfleet.capability import HostContext
from kvmfleet.generate import build

LAN = '[network.links]\nlan0 = "02:00:00:00:00:01"\nlan1 = "02:00:00:00:00:02"\n'


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


def test_link_local_addresses_are_not_fleet_identities() -> None:
    network = (
        LAN + "[network.interfaces.lan0]\n"
        'addresses = ["192.0.2.10/24", "169.254.0.1/16", "fe80::1/64", "2001:db8::10/64"]\n'
    )
    ips = [i.value for i in identities_of(host_toml(network)) if i.kind == "IP address"]
    assert ips == ["192.0.2.10", "2001:db8::10"]


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


def test_bond_without_hwaddress_gets_the_derived_mac() -> None:
    network = (
        '[network.links]\np1 = "02:00:00:00:00:01"\n[network.bonds.bond0]\nslaves = ["p1"]\n'
        'dhcp = "yes"\n'
    )
    netdev = settings_of(host_toml(network), "kvm03")["systemd"]["network"]["netdevs"]["10-bond0"]
    assert netdev["netdevConfig"]["MACAddress"] == "26:53:23:9b:13:db"
