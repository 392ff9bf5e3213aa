"""Install and rollout: [disk] -> disko layouts (as disko's types expect them), [deploy] ->
colmena's target and tags, and `kvmfleet install-plan`."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, findings_of, fleet_settings, host_toml, run_cli, settings_of

DISK = ("disko", "devices", "disk", "main")


def _disk(settings: dict[str, Any]) -> dict[str, Any]:
    node = settings
    for key in DISK:
        node = node[key]
    return node


def test_every_demo_host_has_a_disko_layout_and_no_file_systems_of_its_own() -> None:
    for name in ("kvm01", "kvm02", "x1carbon"):
        s = fleet_settings(REPO, name)
        assert _disk(s)["type"] == "disk"
        # disko defines them; two owners would clash
        assert not {"/", "/boot"} & set(s.get("fileSystems", {}))


def test_msdos_grub_uses_the_legacy_table_and_names_grub_devices() -> None:
    s = settings_of(host_toml(disk={"device": "/dev/sda", "table": "msdos", "filesystem": "xfs"}))
    disk = _disk(s)
    assert disk["device"] == "/dev/sda"
    assert disk["content"] == {
        "type": "table",
        "format": "msdos",
        "partitions": [
            {
                "name": "root",
                "start": "1MiB",
                "end": "100%",
                "bootable": True,
                "content": {"type": "filesystem", "format": "xfs", "mountpoint": "/"},
            }
        ],
    }
    # disko sets no grub.devices for a legacy table: without them NixOS's assertion fails.
    assert s["boot"]["loader"]["grub"] == {"enable": True, "devices": ["/dev/sda"]}


def test_msdos_swap_sits_at_the_end_of_the_disk() -> None:
    s = settings_of(host_toml(disk={"device": "/dev/sda", "table": "msdos", "swap": "8G"}))
    root, swap = _disk(s)["content"]["partitions"]
    assert (root["start"], root["end"]) == ("1MiB", "-8192MiB")
    assert swap == {
        "name": "swap",
        "start": "-8192MiB",
        "end": "100%",
        "fs-type": "linux-swap",
        "content": {"type": "swap"},
    }


def test_gpt_grub_gets_a_bios_boot_partition_and_leaves_grub_devices_to_disko() -> None:
    s = settings_of(host_toml(disk={"device": "/dev/vda", "table": "gpt", "swap": "512M"}))
    content = _disk(s)["content"]
    assert content["type"] == "gpt"
    assert content["partitions"]["boot"] == {"size": "1M", "type": "EF02"}
    assert content["partitions"]["swap"] == {"size": "512M", "content": {"type": "swap"}}
    assert content["partitions"]["root"]["size"] == "100%"
    # disko adds grub.devices for an EF02 partition; a second definition would list it twice.
    assert "devices" not in s["boot"]["loader"]["grub"]


def test_uefi_gets_a_private_esp_on_boot() -> None:
    s = settings_of(
        host_toml(boot={"loader": "systemd-boot"}, disk={"device": "/dev/nvme0n1", "table": "gpt"})
    )
    partitions = _disk(s)["content"]["partitions"]
    assert partitions["ESP"] == {
        "size": "1G",
        "type": "EF00",
        "content": {
            "type": "filesystem",
            "format": "vfat",
            "mountpoint": "/boot",
            "mountOptions": ["fmask=0077", "dmask=0077"],
        },
    }
    assert "boot" not in partitions
    assert partitions["root"]["content"] == {
        "type": "filesystem",
        "format": "ext4",
        "mountpoint": "/",
    }


def test_encrypted_laptop_root_is_luks_with_the_passphrase_asked_and_swap_rekeyed() -> None:
    text = host_toml(
        host={"roles": ["laptop"]},
        boot={"loader": "systemd-boot"},
        disk={"device": "/dev/nvme0n1", "table": "gpt", "encrypt": True, "swap": "16G"},
    )
    partitions = _disk(settings_of(text))["content"]["partitions"]
    # No passwordFile/keyFile: disko asks when formatting, the initrd at every boot.
    assert partitions["root"]["content"] == {
        "type": "luks",
        "name": "cryptroot",
        "settings": {"allowDiscards": True},
        "content": {"type": "filesystem", "format": "ext4", "mountpoint": "/"},
    }
    assert partitions["swap"]["content"] == {"type": "swap", "randomEncryption": True}
    assert findings_of(text, "install") == []


@pytest.mark.parametrize(
    ("disk", "boot", "roles", "expected"),
    [
        (
            {"table": "msdos"},
            "systemd-boot",
            [],
            'disk.table: systemd-boot boots by UEFI from an EFI system partition: needs table = "gpt"',
        ),
        (
            {"table": "msdos", "encrypt": True},
            "grub",
            [],
            "disk.encrypt: an encrypted root needs an unencrypted ESP for kernel and initrd: "
            'use boot.loader = "systemd-boot" with table = "gpt"',
        ),
        (
            {"table": "gpt", "encrypt": True},
            "systemd-boot",
            ["hypervisor"],
            "warning: disk.encrypt: the host waits at every boot until someone types the disk "
            "passphrase on its console",
        ),
    ],
)
def test_table_loader_and_encryption_combinations(
    disk: dict[str, Any], boot: str, roles: list[str], expected: str
) -> None:
    text = host_toml(host={"roles": roles}, boot={"loader": boot}, disk=disk)
    assert findings_of(text, "install") == [expected]


@pytest.mark.parametrize(
    "device",
    [
        "/dev/sda",
        "/dev/vdb",
        "/dev/xvda",
        "/dev/nvme0n1",
        "/dev/mmcblk0",
        "/dev/disk/by-id/wwn-0x5",
    ],
)
def test_whole_disks_are_accepted(device: str) -> None:
    assert _disk(settings_of(host_toml(disk={"device": device})))["device"] == device


def test_deploy_target_is_the_management_address_and_tags_name_the_cluster() -> None:
    s = fleet_settings(REPO, "kvm01")
    assert s["kvmfleet"]["deploy"] == {
        "tags": ["hypervisor", "zone-1", "pod-1", "cluster-1"],
        "targetHost": "10.0.10.21",
    }
    laptop = fleet_settings(REPO, "x1carbon")["kvmfleet"]["deploy"]
    assert laptop == {"tags": ["laptop"], "targetHost": "x1carbon.cloud.example.net"}


def test_explicit_target_host_wins_and_without_any_colmena_uses_the_name() -> None:
    explicit = settings_of(host_toml(deploy={"target_host": "kvm01.mgmt.example.net"}))
    assert explicit["kvmfleet"]["deploy"]["targetHost"] == "kvm01.mgmt.example.net"
    # no [deploy], no CloudStack NIC, no domain: the host's name, never null (colmena would skip
    # the node: null is its "local deployment only")
    bare = settings_of(host_toml(), name="bare")
    assert bare["kvmfleet"]["deploy"] == {"tags": [], "targetHost": "bare"}


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_install_plan_prints_the_commands_for_the_host(demo_fleet: Path) -> None:
    result = run_cli("install-plan", "kvm01", root=demo_fleet)
    assert result.code == 0, result.err
    commands = [line for line in result.out.splitlines() if not line.startswith("#")]
    assert commands == [
        "nix --extra-experimental-features 'nix-command flakes' run .#disko -- "
        "--mode destroy,format,mount --flake '.#kvm01'",
        "nixos-generate-config --root /mnt --no-filesystems --show-hardware-config "
        "> hosts/kvm01/hardware.nix",
        "git add hosts/kvm01/hardware.nix",
        # kvm01 has a host key: its private half goes where sops-nix reads it
        "install -D -m 0600 kvm01_ssh_host_ed25519_key /mnt/etc/ssh/ssh_host_ed25519_key",
        "install -m 0644 kvm01_ssh_host_ed25519_key.pub /mnt/etc/ssh/ssh_host_ed25519_key.pub",
        "nixos-install --flake '.#kvm01' --no-root-passwd",
        # the live system's checkout is on tmpfs: the captured file goes onto the installed disk
        "install -D -m 0644 hosts/kvm01/hardware.nix /mnt/etc/nixos/hosts/kvm01/hardware.nix",
        "reboot",
    ]
    assert "# WARNING: step 1 WIPES /dev/sda: every partition and all data on it." in result.out
    # and how it gets back into the admin's repository, from the host's deployment target
    assert (
        "#      scp root@10.0.10.21:/etc/nixos/hosts/kvm01/hardware.nix hosts/kvm01/hardware.nix"
        in result.out.splitlines()
    )
    assert (
        "#      git add hosts/kvm01/hardware.nix && git commit -m 'kvm01: hardware.nix'"
        in result.out.splitlines()
    )


def test_install_plan_fetches_hardware_from_an_ipv6_target_in_brackets(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "x1carbon" / "host.toml"
    host.write_text(host.read_text() + '\n[deploy]\ntarget_host = "2001:db8::7"\n')
    assert run_cli("generate", root=demo_fleet).code == 0
    result = run_cli("install-plan", "x1carbon", root=demo_fleet)
    assert result.code == 0, result.err
    assert (
        "#      scp 'root@[2001:db8::7]:/etc/nixos/hosts/x1carbon/hardware.nix' "
        "hosts/x1carbon/hardware.nix"
    ) in result.out.splitlines()


def test_install_plan_of_a_host_without_host_key_says_secrets_come_by_hand(
    demo_fleet: Path,
) -> None:
    result = run_cli("install-plan", "x1carbon", root=demo_fleet)
    assert result.code == 0, result.err
    assert "x1carbon's secret files are provisioned by hand" in result.out
    assert "/mnt/etc/ssh" not in result.out


def test_install_plan_warns_about_a_missing_secrets_file(demo_fleet: Path) -> None:
    (demo_fleet / "secrets" / "kvm01.yaml").unlink()
    result = run_cli("install-plan", "kvm01", root=demo_fleet)
    assert result.code == 0, result.err
    assert "warning: secrets/kvm01.yaml: missing" in result.err


def test_install_plan_of_an_encrypted_host_mentions_the_passphrase(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "x1carbon" / "host.toml"
    host.write_text(
        host.read_text().replace('filesystem = "ext4"', 'filesystem = "ext4"\nencrypt = true')
    )
    assert run_cli("generate", root=demo_fleet).code == 0
    result = run_cli("install-plan", "x1carbon", root=demo_fleet)
    assert result.code == 0, result.err
    assert "disko asks for the new LUKS passphrase" in result.out
    assert "LUKS-encrypted" in result.out


def test_install_plan_refuses_a_stale_generated_file(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm01" / "host.toml"
    host.write_text(host.read_text().replace('device = "/dev/sda"', 'device = "/dev/sdb"'))
    result = run_cli("install-plan", "kvm01", root=demo_fleet)
    assert result.code == 1
    assert result.out == ""
    assert result.err.splitlines()[-2:] == [
        "hosts/kvm01/generated.nix: stale; run `kvmfleet generate` (and commit) before installing",
        "kvmfleet: refusing to print an install plan",
    ]


def test_install_plan_refuses_a_hand_edited_generated_file(demo_fleet: Path) -> None:
    generated = demo_fleet / "hosts" / "kvm01" / "generated.nix"
    generated.write_text(generated.read_text().replace('"/dev/sda"', '"/dev/sdb"'))
    result = run_cli("install-plan", "kvm01", root=demo_fleet)
    assert result.code == 1
    assert "hosts/kvm01/generated.nix: edited by hand; run `kvmfleet generate`" in result.err


def test_install_plan_of_an_unknown_host_is_an_error(demo_fleet: Path) -> None:
    result = run_cli("install-plan", "kvm99", root=demo_fleet)
    assert result.code == 2
    assert "Traceback" not in result.err


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_install_plan_warns_when_git_does_not_track_the_generated_file(demo_fleet: Path) -> None:
    _git(demo_fleet, "init", "-q")
    _git(demo_fleet, "add", "hosts/site.toml")
    result = run_cli("install-plan", "kvm01", root=demo_fleet)
    assert result.code == 0
    assert (
        "warning: hosts/kvm01/generated.nix: not tracked by git, so the flake cannot see it: "
        "git add hosts/kvm01/generated.nix"
    ) in result.err.splitlines()
    _git(demo_fleet, "add", "hosts")
    assert "not tracked" not in run_cli("install-plan", "kvm01", root=demo_fleet).err


def test_install_plan_without_host_lists_every_disk(demo_fleet: Path) -> None:
    result = run_cli("install-plan", root=demo_fleet)
    assert result.code == 0, result.err
    assert "  kvm01     /dev/sda  (msdos table, xfs root; GRUB (BIOS))" in result.out.splitlines()
    assert "kvmfleet install-plan HOST" in result.out


def test_deploy_target_prefers_the_management_nic_s_ipv4_address() -> None:
    cloudstack = {
        "version": "4.22",
        "management_servers": ["10.0.10.5"],
        "zone": "1",
        "pod": "2",
        "cluster": "3",
        "guid": "6f1c8e52-9c1b-4f0e-8a7d-2b4e5f6a7c01",
        "private_nic": "mgmt0",
    }
    text = host_toml(
        host={"roles": ["hypervisor"]},
        network={
            "links": {"mgmt0": "14:fe:b5:c6:62:e0"},
            "interfaces": {"mgmt0": {"addresses": ["2001:db8::21/64", "192.0.2.21/24"]}},
        },
        cloudstack=cloudstack,
    )
    deploy = settings_of(text)["kvmfleet"]["deploy"]
    assert deploy == {
        "tags": ["hypervisor", "zone-1", "pod-2", "cluster-3"],
        "targetHost": "192.0.2.21",
    }
    only_v6 = text.replace(', "192.0.2.21/24"', "")
    assert settings_of(only_v6)["kvmfleet"]["deploy"]["targetHost"] == "2001:db8::21"


def test_new_clears_a_disk_named_by_its_serial_but_keeps_a_generic_one(demo_fleet: Path) -> None:
    """A by-id name belongs to one machine (and, as one physical disk, to one host of the fleet);
    `new --like` empties it for the administrator."""
    source = demo_fleet / "hosts" / "kvm02" / "host.toml"
    by_id = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    source.write_text(
        source.read_text().replace('device = "/dev/nvme0n1"', f'device = "{by_id}"', 1)
    )
    result = run_cli("new", "kvm09", "--like", "kvm02", root=demo_fleet)
    assert result.code == 0, result.err
    assert "  disk.device: cleared; fill in kvm09's own value" in result.out.splitlines()
    text = (demo_fleet / "hosts" / "kvm09" / "host.toml").read_text()
    assert tomllib.loads(text)["disk"]["device"] == ""
    assert f'# this machine\'s own: was "{by_id}" in kvm02' in text
    plain = run_cli("new", "kvm10", "--like", "kvm01", root=demo_fleet)
    assert "disk.device" not in plain.out
    assert 'device = "/dev/sda"' in (demo_fleet / "hosts" / "kvm10" / "host.toml").read_text()


def test_every_committed_host_module_gives_colmena_a_target(
    nix_eval: Callable[[Path], Any],
) -> None:
    """What Nix reads from every committed generated module (demo fleet and VM-test inventories):
    kvmfleet.deploy.targetHost is a name or address, never null, which colmena would read as
    "local deployment only" and skip on `apply`. (The flake check colmena-targets reads the same
    from colmenaHive.deploymentConfig where nixpkgs is at hand.)"""
    files = sorted(REPO.glob("hosts/*/generated.nix")) + sorted(
        REPO.glob("checks/*/hosts/*/generated.nix")
    )
    assert len(files) > 3
    for path in files:
        deploy = nix_eval(path)["kvmfleet"]["deploy"]
        assert isinstance(deploy.get("targetHost"), str) and deploy["targetHost"], path
