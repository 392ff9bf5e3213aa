"""The ceph capability: `[ceph]` -> services.ceph (ceph.conf), services.ceph-client (keyring, tools,
libvirt/QEMU with RBD) and CephFS fileSystems; its rules; the VM test's inventory."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, copy_fleet, findings_of, fleet_settings, host_toml, run_cli, settings_of
from kvmfleet.capabilities import ceph as cap
from kvmfleet.generate import build

CHECKS = REPO / "checks" / "ceph-client"
FSID = "b0c3f8f0-5a6e-4b5e-9a8e-0d6f3b5c1a2e"
KEY = "AQBCEJNa3s8nHRAANvdsr93KqzBznuIWm2gOGg=="


def ceph_toml(
    monitors: list[str] | None = None, roles: list[str] | None = None, **extra: Any
) -> str:
    table: dict[str, Any] = {
        "fsid": FSID,
        "monitors": monitors if monitors is not None else ["[2001:db8::11]:6789"],
        "client": "cloudstack",
        "keyring_file": "/var/lib/secrets/ceph.keyring",
        **extra,
    }
    return host_toml(host={"roles": roles or []}, ceph=table)


def mount_toml(monitors: list[str], **mount: Any) -> str:
    return ceph_toml(monitors, cephfs=[{"mountpoint": "/mnt/cephfs", **mount}])


# --- the demo fleet -------------------------------------------------------------------------------


def test_kvm01_ceph_config_keyring_libvirt_and_cephfs() -> None:
    settings = fleet_settings(REPO, "kvm01")
    mons = [f"[2a00:f10:113:1::{n}]:6789" for n in (11, 12, 13)]
    assert settings["services"]["ceph"] == {
        "enable": True,
        "global": {"fsid": FSID, "monHost": ", ".join(mons)},
        "client": {
            "enable": True,
            "extraConfig": {"client": {"ms_bind_ipv6": "true", "ms_bind_ipv4": "false"}},
        },
    }
    assert settings["services"]["ceph-client"] == {
        "enable": True,
        "keyrings": {
            "cloudstack": {"file": "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring"}
        },
        "libvirt": {"enable": True},
    }
    assert settings["fileSystems"]["/mnt/cephfs"] == {
        "device": f"cloudstack@{FSID}.cephfs=/",
        "fsType": "ceph",
        "options": [f"mon_addr={'/'.join(mons)}", "_netdev", "x-systemd.automount"],
        "noCheck": True,
    }
    # the root file system is still disko's (install capability), not replaced
    assert list(settings["fileSystems"]) == ["/mnt/cephfs"]


def test_kvm02_has_ceph_but_no_cephfs() -> None:
    settings = fleet_settings(REPO, "kvm02")
    assert settings["services"]["ceph"]["global"]["fsid"] == FSID
    assert settings["services"]["ceph-client"]["libvirt"] == {"enable": True}
    assert "fileSystems" not in settings  # / and /boot come from its disko layout


def test_the_laptop_has_no_ceph() -> None:
    settings = fleet_settings(REPO, "x1carbon")
    assert "ceph" not in settings.get("services", {})
    assert "ceph-client" not in settings.get("services", {})


# --- settings -------------------------------------------------------------------------------------


def test_ipv4_monitors_bind_ipv4() -> None:
    settings = settings_of(ceph_toml(["10.0.0.11:6789", "10.0.0.12:6789"]))
    ceph = settings["services"]["ceph"]
    assert ceph["global"]["monHost"] == "10.0.0.11:6789, 10.0.0.12:6789"
    assert ceph["client"]["extraConfig"]["client"] == {
        "ms_bind_ipv6": "false",
        "ms_bind_ipv4": "true",
    }


def test_monitor_addresses_are_written_normalised() -> None:
    settings = settings_of(mount_toml(["[2001:0DB8:0::11]:6789"]))
    assert settings["services"]["ceph"]["global"]["monHost"] == "[2001:db8::11]:6789"
    assert settings["fileSystems"]["/mnt/cephfs"]["options"][0] == "mon_addr=[2001:db8::11]:6789"


def test_libvirt_with_rbd_only_on_hypervisors() -> None:
    laptop = settings_of(ceph_toml(roles=["laptop"]))["services"]["ceph-client"]
    hypervisor = settings_of(ceph_toml(roles=["hypervisor"]))["services"]["ceph-client"]
    assert laptop["libvirt"] == {"enable": False}
    assert hypervisor["libvirt"] == {"enable": True}


def test_mount_with_msgr2_file_system_path_and_options() -> None:
    text = mount_toml(
        ["[2001:db8::11]:3300", "[2001:db8::12]:3300"],
        path="/volumes/images",
        fs_name="fs2",
        ms_mode="prefer-crc",
        options=["noatime", "rasize=8388608"],
    )
    assert settings_of(text)["fileSystems"]["/mnt/cephfs"] == {
        "device": f"cloudstack@{FSID}.fs2=/volumes/images",
        "fsType": "ceph",
        "options": [
            "mon_addr=[2001:db8::11]:3300/[2001:db8::12]:3300",
            "ms_mode=prefer-crc",
            "_netdev",
            "x-systemd.automount",
            "noatime",
            "rasize=8388608",
        ],
        "noCheck": True,
    }
    assert findings_of(text, "ceph") == []


def test_no_key_in_the_settings() -> None:
    text = json.dumps(settings_of(mount_toml(["[2001:db8::11]:6789"])))
    assert "secret=" not in text and "secretfile" not in text
    assert not cap.CEPH_KEY.search(text)


# --- rules ----------------------------------------------------------------------------------------


def test_legacy_mode_with_v1_ports_is_fine() -> None:
    assert findings_of(mount_toml(["10.0.0.11:6789"], ms_mode="legacy"), "ceph") == []


def test_other_ports_are_not_judged() -> None:
    assert findings_of(mount_toml(["10.0.0.11:7000"], ms_mode="secure"), "ceph") == []
    assert findings_of(mount_toml(["10.0.0.11:7000"]), "ceph") == []


def test_msgr2_mode_needs_msgr2_ports() -> None:
    (line,) = findings_of(mount_toml(["10.0.0.11:3300", "10.0.0.12:6789"], ms_mode="crc"), "ceph")
    assert line.startswith('ceph.cephfs.0.ms_mode: ms_mode "crc" speaks msgr2, but monitor ')
    assert "10.0.0.12:6789" in line


def test_rbd_only_without_monitors_is_an_error_too() -> None:
    assert findings_of(ceph_toml([]), "ceph") == [
        'ceph.monitors: lists no monitor: librados find the cluster through them (e.g. ["[2001:db8::11]:6789"])'
    ]


def test_duplicates_are_compared_as_addresses() -> None:
    lines = findings_of(ceph_toml(["10.0.0.11:6789", "10.0.0.11:3300", "10.0.0.11:6789"]), "ceph")
    assert lines == ['ceph.monitors.2: "10.0.0.11:6789" is listed twice (also ceph.monitors[0])']


@given(st.binary(min_size=28, max_size=28))
def test_every_cephx_shaped_key_is_found(blob: bytes) -> None:
    import base64

    key = base64.b64encode(b"\x01\x00" + blob[2:]).decode()
    assert cap.CEPH_KEY.search(f"secret={key}")
    assert list(cap.pitfalls({"ceph": {"cephfs": [{"options": [f"secret={key}"]}]}}))


@pytest.mark.parametrize(
    "value",
    [
        "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring",
        "AQ",
        "AQBxyz==",  # too short to be a key
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChhW7FE3vJp5dpC2LOVbP50kn6XI6Qa8SjfTyX4HXtz a@b",
    ],
)
def test_other_strings_are_not_keys(value: str) -> None:
    assert list(cap.pitfalls({"x": value})) == []


def test_a_key_as_a_table_key_is_found() -> None:
    (finding,) = cap.pitfalls({"ceph": {KEY: "x"}})
    assert finding.path == ("ceph", KEY)


# --- generated files and round trips -------------------------------------------------------------


def test_generated_module_round_trips_through_nix(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    """A path inside the file system with punctuation comes back unchanged; one with what Nix
    escapes ("${", "\\", '"') never gets that far: fstab and systemd read those characters too."""
    root = tmp_path / "fleet"
    (root / "hosts" / "a").mkdir(parents=True)
    host_file = root / "hosts" / "a" / "host.toml"
    host_file.write_text(mount_toml(["[2001:db8::11]:6789"], path='/volumes/${x}\\y"z'))
    refused = run_cli("generate", root=root)
    assert refused.code == 2
    assert "ceph.cephfs[0].path" in refused.err and "contains '$'" in refused.err
    host_file.write_text(mount_toml(["[2001:db8::11]:6789"], path="/volumes/a:b@c+d=e,f~g"))
    result = run_cli("generate", root=root)
    assert result.code == 0, result.err
    (host,) = build(root).hosts
    evaluated = nix_eval(root / "hosts" / "a" / "generated.nix")
    assert evaluated == json.loads(json.dumps(host.settings))
    assert evaluated["fileSystems"]["/mnt/cephfs"]["device"].endswith("=/volumes/a:b@c+d=e,f~g")


# --- the VM test's inventory ---------------------------------------------------------------------


def test_vm_test_inventory_matches_the_test_cluster(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    """checks/ceph-client.nix runs the cluster on [fd00:ce::1] (msgr2 3300, v1 6789), IPv6 only,
    and reads the client, keyring, fsid and mount from kvm1's generated module."""
    inventory = tomllib.loads((CHECKS / "hosts" / "kvm1" / "host.toml").read_text())
    assert inventory["ceph"]["monitors"] == ["[fd00:ce::1]:3300"]
    root = copy_fleet(CHECKS, tmp_path / "ceph-client")
    evaluated = nix_eval(root / "hosts" / "kvm1" / "generated.nix")
    assert (
        evaluated["services"]["ceph"]["client"]["extraConfig"]["client"]["ms_bind_ipv6"] == "true"
    )
    (mountpoint,) = [m for m, fs in evaluated["fileSystems"].items() if fs["fsType"] == "ceph"]
    options = evaluated["fileSystems"][mountpoint]["options"]
    assert "ms_mode=prefer-crc" in options
    assert list(evaluated["services"]["ceph-client"]["keyrings"]) == ["cloudstack"]


@pytest.mark.parametrize(
    "monitor", ["2001:db8::12:6789", "[2001:db8::11]", "mon1:6789", "10.0.0.11:0", "[10.0.0.11]:1"]
)
def test_a_bad_monitor_address_is_explained_with_monitor_examples_only(monitor: str) -> None:
    from kvmfleet.model.ceph import _monitor

    with pytest.raises(ValueError) as raised:
        _monitor(monitor)
    # the parser serves iSCSI portals too: no portal may be given as the example
    assert "3260" not in str(raised.value), raised.value
    assert "6789" in str(raised.value)


def test_a_bad_portal_is_explained_with_portal_examples_only() -> None:
    from kvmfleet.model.types import _endpoint

    with pytest.raises(ValueError) as raised:
        _endpoint("2001:db8::1:3260")
    assert "6789" not in str(raised.value) and "3300" not in str(raised.value), raised.value
