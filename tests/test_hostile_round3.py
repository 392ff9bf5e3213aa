"""Hostile inputs, round three (issue 19), one group of tests per class: peers that are fleet hosts,
link-local servers, ports and listen addresses, paths other programs interpret, names CUPS
refuses, credentials inside addresses, install disks. The bad-input corpus (tests/data/bad) holds a
whole fleet per case; these pin the rules themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conftest import host_of, host_toml, identities_of, run_cli
from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import HostContext, PortUse
from kvmfleet.model.install import Disk
from kvmfleet.model.printing import Printer
from kvmfleet.model.types import interpreted_character
from kvmfleet.ports import port_findings

LAN = (
    '[network.links]\nlan0 = "52:54:00:12:01:0{n}"\n\n'
    '[network.interfaces.lan0]\naddresses = ["10.0.10.2{n}/24"]\ngateways = ["10.0.10.1"]\n'
)
CEPH = """
[ceph]
fsid = "b0c3f8f0-5a6e-4b5e-9a8e-0d6f3b5c1a2e"
monitors = {monitors}
client = "kvm"
keyring_file = "/var/lib/secrets/ceph.keyring"
"""


def fleet(tmp_path: Path, hosts: dict[str, str], site: str = "") -> Path:
    root = tmp_path / "fleet"
    for name, text in hosts.items():
        (root / "hosts" / name).mkdir(parents=True)
        (root / "hosts" / name / "host.toml").write_text(text)
    if site:
        (root / "hosts" / "site.toml").write_text(site)
    return root


def errors(root: Path) -> list[str]:
    result = run_cli("check", root=root)
    assert "Traceback" not in result.err
    return [
        line for line in result.err.splitlines() if not line.startswith(("warning: ", "kvmfleet: "))
    ]


def host(n: int, extra: str = "", **tables: dict[str, Any]) -> str:
    return host_toml(LAN.format(n=n) + extra, **tables)


# --- 1. peers that are fleet hosts ----------------------------------------------------------------


def _peers(text: str) -> dict[str, list[str]]:
    ctx = HostContext("a", host_of(text))
    out: dict[str, list[str]] = {}
    for cap in REGISTRY:
        for peer in cap.peers(ctx):
            out.setdefault(peer.role, []).append(peer.address)
    return out


def test_every_capability_declares_the_servers_it_relies_on() -> None:
    text = host(
        1,
        CEPH.format(monitors='["[2001:db8::11]:6789"]')
        + """
[iscsi]
initiator_name = "iqn.2026-11.net.example:a"
[[iscsi.targets]]
portal = "[2001:db8::100]:3260"
target = "iqn.2026-11.net.example:san"
[[printing.printers]]
name = "office"
host = "Printer.Example.NET"
""",
        time={"servers": ["ntp.example.net"]},
        deploy={"target_host": "a.example.net"},
    )
    assert _peers(text) == {
        "gateway": ["10.0.10.1"],
        "time server": ["ntp.example.net"],
        "iSCSI portal": ["2001:db8::100"],
        "iSCSI target": ["iqn.2026-11.net.example:san"],
        "Ceph monitor": ["2001:db8::11"],
        "printer": ["printer.example.net"],
        "deployment target": ["a.example.net"],
    }


def test_a_host_is_known_by_its_name_and_fully_qualified_name() -> None:
    names = [
        i.value
        for i in identities_of(host_toml(host={"domain": "example.net"}), "base", name="kvm7")
    ]
    assert names == ["kvm7", "kvm7.example.net"]


def test_a_peer_naming_a_fleet_host_is_refused_whatever_its_case(tmp_path: Path) -> None:
    root = fleet(
        tmp_path,
        {
            "a": host(1, host={"domain": "example.net"}),
            "b": host(2, host={"domain": "example.net"}, time={"servers": ["A.Example.Net"]}),
        },
    )
    assert errors(root) == [
        "hosts/b/host.toml: time.servers[0]: time server a.example.net is the name of fleet "
        "host a (host.domain), which is not a time server"
    ]


def test_a_deployment_target_may_be_the_host_itself_but_not_a_management_server(
    tmp_path: Path,
) -> None:
    own = fleet(tmp_path / "own", {"a": host(1, deploy={"target_host": "10.0.10.21"})})
    assert errors(own) == []
    ntp = fleet(
        tmp_path / "ntp",
        {"a": host(1, time={"servers": ["10.0.10.21"]})},
    )
    assert errors(ntp) == [
        "hosts/a/host.toml: time.servers[0]: time server 10.0.10.21 is this host's own address "
        "(network.interfaces.lan0.addresses[0]), which is not a time server"
    ]


def test_the_api_url_is_a_management_server_too(tmp_path: Path) -> None:
    from kvmfleet.capabilities.cloudstack import api_host

    assert api_host("https://Cloud.Example.NET./client/api") == "cloud.example.net"
    assert api_host("http://[2001:DB8::5]:8080/client/api") == "2001:db8::5"


# --- 2. link-local servers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tables",
    [
        {"time": {"servers": ["fe80::123"]}},
        {"deploy": {"target_host": "fe80::21"}},
        {"cloudstack": {"management_servers": ["fe80::5"]}},
    ],
)
def test_ipv6_link_local_servers_are_refused_with_the_reason(
    tables: dict[str, dict[str, Any]],
) -> None:
    with pytest.raises(ValidationError) as err:
        host_of(host_toml(**tables))
    assert "is an IPv6 link-local address: it is reachable only through a named interface" in str(
        err.value
    )


def test_ipv4_link_local_time_servers_stay_allowed_as_name_servers_do() -> None:
    # a cloud's time service (169.254.169.123) is reached on the link without a zone
    assert host_of(host_toml(time={"servers": ["169.254.169.123"]})).time.servers == [
        "169.254.169.123"
    ]


def test_monitors_and_portals_refuse_link_local() -> None:
    with pytest.raises(ValidationError, match="link-local"):
        host_of(host_toml(CEPH.format(monitors='["[fe80::11]:6789"]')))


# --- 3. ports and listen addresses ----------------------------------------------------------------


def _ports(text: str, name: str = "a") -> list[str]:
    ctx = HostContext(name, host_of(text))
    return [f"{'.'.join(map(str, f.path))}: {f.message}" for f in port_findings(ctx)]


def test_every_service_declares_its_ports() -> None:
    text = host(1, "[quassel]\n[printing]\nbrowse = true\n")
    ctx = HostContext("a", host_of(text))
    uses = {(u.service, u.protocol, u.first, u.last) for c in REGISTRY for u in c.ports(ctx)}
    assert uses == {
        ("sshd", "tcp", 22, 22),
        ("quasselcore", "tcp", 4242, 4242),
        ("cupsd", "tcp", 631, 631),
        ("avahi-daemon", "udp", 5353, 5353),
    }


def test_one_port_for_two_services_is_refused_tcp_and_udp_apart() -> None:
    assert _ports(host(1, "[quassel]\nport = 5353\n[printing]\nbrowse = true\n")) == []
    (line,) = _ports(host(1, "[quassel]\nport = 22\n"))
    assert line.startswith(
        "quassel.port: TCP port 22 of quasselcore (every address) is already taken by sshd"
    )


def test_loopback_services_collide_only_with_the_same_or_every_address() -> None:
    assert _ports(host(1, '[quassel]\nlisten = ["10.0.10.21"]\nport = 631\n[printing]\n')) == []
    assert len(_ports(host(1, '[quassel]\nlisten = ["127.0.0.1"]\nport = 631\n[printing]\n'))) == 1


def test_a_listen_address_must_be_the_hosts_unless_it_comes_from_dhcp() -> None:
    (line,) = _ports(host(1, '[quassel]\nlisten = ["10.0.10.99", "::1", "0.0.0.0"]\n'))
    assert line.startswith('quassel.listen.0: "10.0.10.99" is not an address of this host')
    dhcp = host_toml(
        '[network.links]\nlan0 = "52:54:00:12:01:01"\n[network.interfaces.lan0]\ndhcp = "yes"\n'
        '[quassel]\nlisten = ["10.0.10.99"]\n'
    )
    assert _ports(dhcp) == []


def test_port_ranges_overlap_by_their_ends() -> None:
    from kvmfleet.ports import _overlap

    a = PortUse("a", "tcp", 5900, 6100, ("10.0.0.1",), ("x",))
    assert _overlap(a, PortUse("b", "tcp", 6100, 6100, ("10.0.0.1",), ("y",)))
    assert not _overlap(a, PortUse("b", "tcp", 6101, 6200, ("10.0.0.1",), ("y",)))
    assert not _overlap(a, PortUse("b", "tcp", 6000, 6000, ("10.0.0.2",), ("y",)))
    assert _overlap(a, PortUse("b", "tcp", 6000, 6000, ("::",), ("y",)))
    assert not _overlap(a, PortUse("b", "udp", 6000, 6000, ("::",), ("y",)))


# --- 4. paths other programs interpret, state directories ------------------------------------------


@pytest.mark.parametrize(
    ("path", "consumer"),
    [
        ("/srv/a%i", "specifier"),
        ("/mnt/with\\040space", "fstab"),
        ('/srv/"q"', "quotes"),
        ("/srv/it's", "quotes"),
        ("/srv/$HOME", "$VARIABLES"),
    ],
)
def test_paths_with_characters_consumers_interpret_are_refused(path: str, consumer: str) -> None:
    why = interpreted_character(path)
    assert why is not None and consumer in why
    with pytest.raises(ValidationError) as err:
        host_of(host_toml(quassel={"data_dir": path}))
    assert consumer in str(err.value)


def test_a_secret_path_with_such_a_character_is_not_repeated() -> None:
    with pytest.raises(ValidationError) as err:
        host_of(host_toml(host={"root_password_file": "/var/lib/s%cret"}))
    assert "s%cret" not in str(err.value).split("input_value")[0]
    assert "the value is not shown" in str(err.value)


def test_quassel_data_dir_may_hold_its_own_certificate_but_no_other_secret() -> None:
    from conftest import findings_of

    own = host_toml(
        quassel={"data_dir": "/var/lib/quassel", "certificate_file": "/var/lib/quassel/c.pem"}
    )
    assert not [f for f in findings_of(own, "quassel") if "data_dir" in f]
    other = host_toml(
        host={"root_password_file": "/srv/quassel/keys/root.hash"},
        quassel={"data_dir": "/srv/quassel", "certificate_file": "/etc/q.pem"},
    )
    (finding,) = [f for f in findings_of(other, "quassel") if f.startswith("quassel.data_dir")]
    assert "holds /srv/quassel/keys/root.hash (host.root_password_file)" in finding


# --- 5. names other programs refuse ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a b", "a/b", "a\\b", "a?b", "a'b", 'a"b', "a#b", "a@b", "x" * 128, "é"]
)
def test_printer_names_follow_lpadmin(name: str) -> None:
    with pytest.raises(ValidationError, match="lpadmin's rule"):
        Printer.model_validate({"name": name, "host": "printer.example.net"})


def test_printer_names_lpadmin_takes_are_accepted() -> None:
    for name in ["Office_2nd-Floor", "x" * 127, "a.b+c=d!$%&()*,:;<=>[]^`{|}~"]:
        assert Printer.model_validate({"name": name, "host": "p.example.net"}).name == name


# --- 6. credentials inside addresses --------------------------------------------------------------

SECRET = "Hunter2pw"


@pytest.mark.parametrize(
    "tables",
    [
        {"deploy": {"target_host": f"root:{SECRET}@kvm01.example.net"}},
        {"time": {"servers": [f"ntp:{SECRET}@10.0.10.123"]}},
        {"host": {"domain": f"u:{SECRET}@example.net"}},
        {"firewall": {"trusted_networks": [f"u:{SECRET}@10.0.0.0/8"]}},
    ],
)
def test_credentials_in_an_address_are_refused_without_repeating_them(
    tmp_path: Path, tables: dict[str, dict[str, Any]]
) -> None:
    root = fleet(tmp_path, {"a": host_toml(**tables)})
    result = run_cli("check", root=root)
    assert result.code == 2
    assert "holds a user name and password" in result.err
    assert SECRET not in result.err


def test_credentials_in_printer_and_monitor_addresses(tmp_path: Path) -> None:
    text = host_toml(
        CEPH.format(monitors=f'["c:{SECRET}@10.0.0.11:6789"]')
        + f'[[printing.printers]]\nname = "p"\nhost = "lp:{SECRET}@printer"\n'
        f'queue = "x:{SECRET}@ipp/print"\n'
    )
    result = run_cli("check", root=fleet(tmp_path, {"a": text}))
    assert result.err.count("holds a user name and password") == 3, result.err
    assert SECRET not in result.err


# --- 7. install disks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "why"),
    [
        ("/dev/sdb2", "is a partition"),
        ("/dev/nvme1n1p3", "is a partition"),
        ("/dev/mmcblk0p1", "is a partition"),
        ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part2", "is a partition"),
        ("/dev/mapper/vg-root", "device-mapper"),
        ("/dev/dm-3", "device-mapper"),
        ("/dev/md127", "device-mapper, multipath or RAID"),
        ("/dev/disk/by-id/dm-name-mpatha", "device-mapper"),
        ("/dev/disk/by-id/md-uuid-1234", "RAID"),
        ("/dev/disk/by-partuuid/1234", "file system or partition"),
        ("/dev/disk/by-label/nixos", "file system or partition"),
    ],
)
def test_install_disks_say_why_a_device_is_not_a_whole_disk(device: str, why: str) -> None:
    with pytest.raises(ValidationError) as err:
        Disk.model_validate({"device": device, "table": "gpt"})
    assert why in str(err.value)


def test_one_by_id_disk_is_one_identity_whatever_udev_name() -> None:
    def disk(device: str) -> list[str]:
        return [
            i.value
            for i in identities_of(host_toml(disk={"device": device}), "install")
            if i.kind == "install disk"
        ]

    assert disk("/dev/disk/by-id/wwn-0x5000C500A1B2C3D4") == ["WWN 0x5000c500a1b2c3d4"]
    assert disk("/dev/disk/by-id/scsi-35000c500a1b2c3d4") == ["WWN 0x5000c500a1b2c3d4"]
    assert disk("/dev/disk/by-id/nvme-Samsung_SSD_980_S64") == ["nvme-Samsung_SSD_980_S64"]
    # kernel and by-path names are per machine: every host has a /dev/sda
    assert disk("/dev/sda") == []
    assert disk("/dev/disk/by-path/pci-0000:00:1f.2-ata-1") == []


@pytest.mark.parametrize(
    "data_dir", ["/root/.ssh", "/root/quassel", "/home/alice/.ssh", "/var/empty/q"]
)
def test_quassel_data_dir_never_takes_a_home_dot_directory_or_roots_home(data_dir: str) -> None:
    from conftest import findings_of

    text = host_toml(quassel={"data_dir": data_dir})
    assert any(
        f.startswith("quassel.data_dir:") and "system or shared directory" in f
        for f in findings_of(text, "quassel")
    )


def test_cephfs_is_never_mounted_over_roots_home() -> None:
    with pytest.raises(ValidationError, match="is a system directory"):
        host_of(
            host_toml(
                CEPH.format(monitors='["10.0.0.11:6789"]')
                + '[[ceph.cephfs]]\nmountpoint = "/root/.ssh"\n'
            )
        )


def test_a_server_on_loopback_is_the_host_itself(tmp_path: Path) -> None:
    root = fleet(
        tmp_path,
        {
            "a": host(
                1,
                '[[printing.printers]]\nname = "p"\nhost = "127.0.0.1"\n',
                time={"servers": ["localhost", "::1"]},
                deploy={"target_host": "localhost"},
            )
        },
    )
    assert errors(root) == [
        "hosts/a/host.toml: printing.printers[0].host: printer 127.0.0.1 is this host itself "
        "(loopback), which is not a printer",
        "hosts/a/host.toml: time.servers[0]: time server localhost is this host itself "
        "(loopback), which is not a time server",
        "hosts/a/host.toml: time.servers[1]: time server ::1 is this host itself (loopback), "
        "which is not a time server",
    ]
