"""Which MAC a bond or bridge gets: its hwaddress, a bridge its bond port's fixed MAC, else derived;
and which of those MACs must be unique in the fleet."""

from __future__ import annotations

from pathlib import Path

from conftest import host_toml, run_cli, settings_of
from kvmfleet.capabilities import network as cap

LINKS = '[network.links]\np1 = "02:00:00:00:01:01"\np2 = "02:00:00:00:01:02"\n'


def _bond(hwaddress: str | None, bridge_hwaddress: str | None = None) -> str:
    """A host.toml: bond0 of p1 (with a fixed MAC or without) as the port of br0, which has the
    address."""
    text = LINKS + '[network.bonds.bond0]\nslaves = ["p1"]\n'
    if hwaddress is not None:
        text += f'hwaddress = "{hwaddress}"\n'
    text += '[network.bridges.br0]\nports = ["bond0"]\naddresses = ["10.0.0.1/24"]\n'
    if bridge_hwaddress is not None:
        text += f'hwaddress = "{bridge_hwaddress}"\n'
    return host_toml(text)


def _macs(text: str, name: str = "a") -> dict[str, str]:
    netdevs = settings_of(text, name)["systemd"]["network"]["netdevs"]
    return {
        unit.removeprefix("10-"): n["netdevConfig"]["MACAddress"] for unit, n in netdevs.items()
    }


def _fleet(root: Path, **hosts: str) -> Path:
    for name, text in hosts.items():
        (root / "hosts" / name).mkdir(parents=True)
        (root / "hosts" / name / "host.toml").write_text(text)
    return root


def test_bridge_without_hwaddress_takes_its_bonds_fixed_mac() -> None:
    assert _macs(_bond("fe:80:12:00:00:01")) == {
        "bond0": "fe:80:12:00:00:01",
        "br0": "fe:80:12:00:00:01",
    }


def test_bridge_over_a_bond_without_fixed_mac_gets_its_own_derived_mac() -> None:
    assert _macs(_bond(None)) == {
        "bond0": cap.derived_mac("a", "bond0"),
        "br0": cap.derived_mac("a", "br0"),
    }


def test_bridge_hwaddress_wins_over_its_bonds() -> None:
    assert _macs(_bond("fe:80:12:00:00:01", "fe:80:12:00:00:02")) == {
        "bond0": "fe:80:12:00:00:01",
        "br0": "fe:80:12:00:00:02",
    }


def test_the_first_bond_port_with_a_fixed_mac_gives_the_bridge_its_mac() -> None:
    text = host_toml(
        LINKS + '[network.bonds.bond0]\nslaves = ["p1"]\n'
        '[network.bonds.bond1]\nslaves = ["p2"]\nhwaddress = "fe:80:12:00:00:09"\n'
        '[network.bridges.br0]\nports = ["bond0", "bond1"]\naddresses = ["10.0.0.1/24"]\n'
    )
    assert _macs(text)["br0"] == "fe:80:12:00:00:09"


def test_a_bond_and_its_bridge_may_share_a_mac_but_not_across_hosts(tmp_path: Path) -> None:
    same = "fe:80:12:00:00:01"
    root = _fleet(tmp_path, a=_bond(same, same))
    assert run_cli("check", root=root).code == 0
    b = _bond("fe:80:12:00:00:02", same).replace("02:00:00:00:01:0", "02:00:00:00:02:0")
    _fleet(tmp_path, b=b.replace("10.0.0.1/24", "10.0.0.2/24"))
    result = run_cli("check", root=root)
    assert result.code == 2
    assert (
        "hosts/b/host.toml: network.bridges.br0.hwaddress: MAC address fe:80:12:00:00:01 is also "
        "used by a (network.bonds.bond0.hwaddress)"
    ) in result.err.splitlines()


def test_two_interfaces_of_one_host_still_may_not_share_a_mac(tmp_path: Path) -> None:
    text = host_toml(
        LINKS + '[network.bonds.bond0]\nslaves = ["p1"]\nhwaddress = "fe:80:12:00:00:01"\n'
        '[network.bridges.br0]\nports = ["bond0"]\naddresses = ["10.0.0.1/24"]\n'
        '[network.bridges.br1]\nports = ["p2"]\nhwaddress = "fe:80:12:00:00:01"\n'
    )
    result = run_cli("check", root=_fleet(tmp_path, a=text))
    assert result.code == 2
    assert (
        "hosts/a/host.toml: network.bridges.br1.hwaddress: MAC address fe:80:12:00:00:01 is also "
        "used by network.bonds.bond0.hwaddress"
    ) in result.err.splitlines()
