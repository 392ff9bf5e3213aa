"""Host basics: what a host.toml says ends up as the NixOS settings an administrator expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import REPO, findings_of, host_of, host_toml, run_cli, settings_of
from kvmfleet.generate import build


def _settings(name: str) -> dict:  # type: ignore[type-arg]
    (result,) = [r for r in build(REPO).hosts if r.name == name]
    return result.settings


def test_grub_host_on_msdos_disk() -> None:
    s = _settings("kvm01")
    assert s["boot"]["loader"] == {"grub": {"enable": True, "devices": ["/dev/sda"]}}
    assert s["boot"]["kernel"]["sysctl"]["net.ipv4.tcp_retries2"] == 8


def test_uefi_host_gets_systemd_boot_and_esp() -> None:
    s = _settings("kvm02")
    assert s["boot"]["loader"] == {
        "systemd-boot": {"enable": True},
        "efi": {"canTouchEfiVariables": True},
    }
    # no [sysctl] of its own (the storage capability adds ARP settings)
    assert "net.ipv4.tcp_retries2" not in s["boot"]["kernel"]["sysctl"]


def test_identity_and_layering_from_site() -> None:
    s = _settings("kvm01")
    assert s["networking"]["hostName"] == "kvm01"
    assert s["networking"]["domain"] == "cloud.example.net"
    assert s["time"]["timeZone"] == "Europe/Amsterdam"
    assert s["system"]["stateVersion"] == "26.05"
    assert s["nixpkgs"]["hostPlatform"] == "x86_64-linux"
    assert s["kvmfleet"]["roles"] == ["hypervisor"]
    assert s["kvmfleet"]["extraPackages"] == ["wget", "git", "screen"]
    # [roles.hypervisor.firewall] reaches hypervisors only
    assert s["kvmfleet"]["firewall"]["trustedNetworks"] == ["10.0.10.0/24", "2a00:f10:113:1::/64"]
    assert _settings("x1carbon")["kvmfleet"]["firewall"]["trustedNetworks"] == []


def test_root_logs_in_by_key_only() -> None:
    keys = _settings("kvm01")["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"]
    assert keys and all(k.startswith("ssh-") for k in keys)


def test_firewall_can_be_disabled_with_a_warning(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts" / "a"
    hosts.mkdir(parents=True)
    key = (REPO / "hosts" / "site.toml").read_text().split('"ssh-ed25519 ')[1].split('"')[0]
    (hosts / "host.toml").write_text(
        '[host]\nstate_version = "25.11"\n[boot]\nloader = "grub"\n[disk]\ndevice = "/dev/vda"\n'
        f'table = "msdos"\n[ssh]\nauthorized_keys = ["ssh-ed25519 {key}"]\n[firewall]\nenable = false\n'
    )
    fleet = build(tmp_path)
    assert fleet.hosts[0].settings["networking"]["firewall"] == {"enable": False}
    assert any("firewall is off" in str(w) for w in fleet.warnings)


def test_a_trusted_network_of_every_address_is_warned_about() -> None:
    # An empty list is warned about where ports are opened; /0 is the same, written otherwise.
    open_to_all = host_toml(firewall={"trusted_networks": ["10.0.10.0/24", "0.0.0.0/0", "::/0"]})
    assert findings_of(open_to_all, "base") == [
        f"warning: firewall.trusted_networks.{index}: {net} trusts every IPv{version} address: "
        "SSH and the management ports are open to all, as with no trusted_networks; list the "
        "management networks"
        for index, net, version in [(1, "0.0.0.0/0", 4), (2, "::/0", 6)]
    ]
    assert (
        findings_of(host_toml(firewall={"trusted_networks": ["::/1", "0.0.0.0/1"]}), "base") == []
    )


# --- time servers and rescue access ---------------------------------------------------------------


def test_servers_take_the_inventorys_time_servers_laptops_keep_the_pool() -> None:
    servers = {"servers": ["ntp1.example.net", "10.0.10.123"]}
    server = settings_of(host_toml(time=servers))
    assert server["networking"]["timeServers"] == ["ntp1.example.net", "10.0.10.123"]
    assert server["services"]["timesyncd"]["servers"] == ["ntp1.example.net", "10.0.10.123"]
    hypervisor = settings_of(host_toml(host={"roles": ["hypervisor"]}, time=servers))
    assert hypervisor["networking"]["timeServers"] == ["ntp1.example.net", "10.0.10.123"]
    laptop = settings_of(host_toml(host={"roles": ["laptop"]}, time=servers))
    assert "timeServers" not in laptop["networking"]
    assert "timesyncd" not in laptop.get("services", {})
    assert "timeServers" not in settings_of(host_toml())["networking"]


def test_time_servers_are_host_names_or_addresses() -> None:
    assert host_of(
        host_toml(time={"servers": ["NTP1.Example.NET", "2001:db8::123"]})
    ).time.servers == [
        "ntp1.example.net",
        "2001:db8::123",
    ]
    with pytest.raises(ValidationError, match="is not a host name or IP address"):
        host_of(host_toml(time={"servers": ["ntp one"]}))


def test_a_hypervisor_without_time_servers_or_root_password_is_warned_about() -> None:
    hypervisor = host_toml(host={"roles": ["hypervisor"]})
    assert findings_of(hypervisor, "base") == [
        "warning: host.root_password_file: not set: root has no password, so when a switch breaks "
        "networking nobody can log in at the console or in the emergency shell; the way back is "
        "then the previous generation in the boot menu",
        "warning: time.servers: not set: the hypervisor sets its clock from the public NTP pool; "
        "Ceph and CloudStack need the hosts' clocks in step, so give the site's NTP servers "
        "(e.g. in site.toml)",
    ]
    rescued = host_toml(
        host={"roles": ["hypervisor"], "root_password_file": "/var/lib/secrets/root.hash"},
        time={"servers": ["10.0.10.123"]},
    )
    assert findings_of(rescued, "base") == []
    # other roles: no warning (a laptop has a keyboard user, a lab box no Ceph)
    assert findings_of(host_toml(host={"roles": ["laptop"]}), "base") == []
    assert findings_of(host_toml(), "base") == []


def test_a_time_server_that_is_a_fleet_hosts_address_is_an_error(tmp_path: Path) -> None:
    a = host_toml(
        network={"links": {"p1": "02:00:00:00:00:01"}},
        extra='[network.interfaces.p1]\naddresses = ["10.0.10.21/24"]\n',
    )
    b = host_toml(time={"servers": ["10.0.10.21"]})
    for name, text in (("a", a), ("b", b)):
        (tmp_path / "hosts" / name).mkdir(parents=True)
        (tmp_path / "hosts" / name / "host.toml").write_text(text)
    result = run_cli("check", root=tmp_path)
    assert result.code == 2
    assert (
        "hosts/b/host.toml: time.servers[0]: time server 10.0.10.21 is the address of fleet host a "
        "(network.interfaces.p1.addresses[0]), which is not a time server"
    ) in result.err.splitlines()
