"""Host basics: what a host.toml says ends up as the NixOS settings an administrator expects."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO
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
