"""One run reports everything it can know, each cause once: a broken table does not hide a
host's other problems or its fleet-wide claims, and one cause does not become many lines."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_cli
from kvmfleet.inventory import HostInventory, layer_host
from kvmfleet.locate import locate_missing, missing_key, own_paths
from kvmfleet.problems import Finding


def _errors(root: Path) -> list[str]:
    result = run_cli("check", root=root)
    assert result.code == 2
    return [
        line for line in result.err.splitlines() if not line.startswith(("warning", "kvmfleet:"))
    ]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_a_type_error_does_not_hide_fleet_wide_claims(demo_fleet: Path) -> None:
    hosts = demo_fleet / "hosts"
    _edit(hosts / "kvm01" / "host.toml", "mtu = 9000", 'mtu = "9000"')
    _edit(hosts / "kvm02" / "host.toml", "cloud:kvm02", "cloud:kvm01")
    errors = _errors(demo_fleet)
    assert (
        'hosts/kvm01/host.toml: network.interfaces.san0.mtu: expected an integer, got "9000"'
        in errors
    )
    assert [e for e in errors if "is also used by" in e] == [
        "hosts/kvm01/host.toml: iscsi.initiator_name: iSCSI initiator name "
        "iqn.2026-11.net.example.cloud:kvm01 is also used by kvm02 (iscsi.initiator_name)",
        "hosts/kvm02/host.toml: iscsi.initiator_name: iSCSI initiator name "
        "iqn.2026-11.net.example.cloud:kvm01 is also used by kvm01 (iscsi.initiator_name)",
    ]


def test_a_broken_table_does_not_hide_other_tables_findings(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm01" / "host.toml"
    _edit(host, "mtu = 9000", 'mtu = "9000"')
    host.write_text(host.read_text() + "\n[firewall]\nenable = false\n")
    result = run_cli("check", root=demo_fleet)
    assert (
        "warning: hosts/kvm01/host.toml: firewall.enable: the firewall is off: every listening "
        "service is reachable from everywhere"
    ) in result.err.splitlines()


def test_an_array_where_the_host_table_belongs_is_one_error(demo_fleet: Path) -> None:
    _edit(demo_fleet / "hosts" / "kvm02" / "host.toml", "\n[host]\n", "\n[[host]]\n")
    assert _errors(demo_fleet) == ["hosts/kvm02/host.toml: host: expected a table, got an array"]


def test_a_missing_site_toml_is_one_error(demo_fleet: Path) -> None:
    (demo_fleet / "hosts" / "site.toml").unlink()
    (error,) = _errors(demo_fleet)
    assert error.startswith(
        "hosts/site.toml: no such file, and 3 hosts lack required keys that fleet-wide defaults "
        "would give them ("
    )


SITE = "hosts/site.toml"


def _host(name: str, own: dict[str, object]) -> HostInventory:
    site = {"roles": {"hypervisor": {"cloudstack": {"zone": "1"}}}}
    data = {"host": {"roles": ["hypervisor"]}, **own}
    return layer_host(name, f"hosts/{name}/host.toml", data, SITE, site)


def test_a_per_host_value_is_missing_in_the_host_not_in_site_toml() -> None:
    # Only b writes into the [cloudstack] table the site's hypervisor role opens, and sets guid.
    a, b, c = _host("a", {}), _host("b", {"cloudstack": {"guid": "g"}}), _host("c", {})
    guid = Finding(("cloudstack", "guid"), "required key is missing")
    pod = Finding(("cloudstack", "pod"), "required key is missing")
    missing = [(a, [guid, pod]), (b, [pod]), (c, [guid, pod])]
    problems = locate_missing(
        [(inv.name, inv.file, [missing_key(inv, f) for f in found]) for inv, found in missing],
        SITE,
        True,
        lambda: own_paths([a, b, c]),
    )
    assert sorted(str(p) for p in problems) == [
        "hosts/a/host.toml: cloudstack.guid: required key is missing (a per-host value: other "
        "hosts set it in their own host.toml; hosts/site.toml [roles.hypervisor] cannot)",
        "hosts/b/host.toml: cloudstack.pod: required key is missing",
        "hosts/c/host.toml: cloudstack.guid: required key is missing (a per-host value: other "
        "hosts set it in their own host.toml; hosts/site.toml [roles.hypervisor] cannot)",
        "hosts/site.toml: roles.hypervisor.cloudstack.pod: required key is missing (hosts a, c)",
    ]


def test_a_finding_in_site_toml_for_several_hosts_is_one_line(demo_fleet: Path) -> None:
    site = demo_fleet / "hosts" / "site.toml"
    site.write_text(re.sub(r"(?m)^root_password_file = .*$", "", site.read_text()))
    result = run_cli("check", root=demo_fleet)
    lines = [line for line in result.err.splitlines() if "host.root_password_file" in line]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("warning: hosts/site.toml: host.root_password_file: ")
    assert lines[0].endswith(" (hosts kvm01, kvm02)")
