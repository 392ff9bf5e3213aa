"""The kvmfleet command end to end on a copy of the demo fleet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from kvmfleet.model.base import ROLES


def _generated(root: Path) -> list[Path]:
    return sorted(root.glob("hosts/*/generated.nix"))


def test_generate_then_nothing_changes(demo_fleet: Path) -> None:
    for path in _generated(demo_fleet):
        path.unlink()
    first = run_cli("generate", root=demo_fleet)
    assert first.code == 0, first.err
    assert "hosts/kvm01/generated.nix: written (new)" in first.out.splitlines()
    mtimes = {p: p.stat().st_mtime_ns for p in _generated(demo_fleet)}
    os.utime(demo_fleet / "hosts" / "kvm01" / "host.toml")
    second = run_cli("generate", root=demo_fleet)
    assert second.code == 0
    assert "written (" not in second.out
    assert {p: p.stat().st_mtime_ns for p in _generated(demo_fleet)} == mtimes
    assert run_cli("generate", "--check", root=demo_fleet).code == 0


def test_check_reports_stale_missing_and_orphaned_without_writing(demo_fleet: Path) -> None:
    hosts = demo_fleet / "hosts"
    (hosts / "kvm02" / "generated.nix").unlink()
    host_toml = hosts / "kvm01" / "host.toml"
    host_toml.write_text(
        host_toml.read_text().replace('"net.ipv4.tcp_retries2" = 8', '"net.ipv4.tcp_retries2" = 9')
    )
    orphan = hosts / "gone"
    orphan.mkdir()
    (orphan / "generated.nix").write_text((hosts / "x1carbon" / "generated.nix").read_text())
    before = {p: p.read_bytes() for p in hosts.rglob("*") if p.is_file()}
    result = run_cli("generate", "--check", root=demo_fleet)
    assert result.code == 1
    assert result.out.splitlines() == [
        "hosts/kvm01/generated.nix: stale",
        "hosts/kvm02/generated.nix: missing",
        "hosts/gone/generated.nix: orphaned (no host.toml)",
    ]
    assert {p: p.read_bytes() for p in hosts.rglob("*") if p.is_file()} == before
    fixed = run_cli("generate", root=demo_fleet)
    assert fixed.code == 0, fixed.err
    assert "hosts/gone/generated.nix: removed (its host.toml is gone)" in fixed.out
    assert not (orphan / "generated.nix").exists()
    assert run_cli("generate", "--check", root=demo_fleet).code == 0


def test_hand_edited_file_is_not_overwritten_without_force(demo_fleet: Path) -> None:
    target = demo_fleet / "hosts" / "kvm01" / "generated.nix"
    edited = target.read_text().replace(
        'time.timeZone = "Europe/Amsterdam";', 'time.timeZone = "UTC";'
    )
    target.write_text(edited)
    host_toml = demo_fleet / "hosts" / "kvm02" / "host.toml"
    host_toml.write_text(host_toml.read_text() + '\n[sysctl]\n"vm.swappiness" = 10\n')
    refused = run_cli("generate", root=demo_fleet)
    assert refused.code == 2
    assert "hosts/kvm01/generated.nix: edited by hand" in refused.err
    assert target.read_text() == edited
    assert run_cli("generate", "--check", root=demo_fleet).code == 1  # kvm02 not written either
    forced = run_cli("generate", "--force", root=demo_fleet)
    assert forced.code == 0
    assert "hosts/kvm01/generated.nix: written (overwrote hand edits)" in forced.out
    assert 'time.timeZone = "Europe/Amsterdam";' in target.read_text()


def test_generate_named_hosts_only(demo_fleet: Path) -> None:
    for path in _generated(demo_fleet):
        path.unlink()
    result = run_cli("generate", "kvm02", root=demo_fleet)
    assert result.code == 0, result.err
    assert [p.parent.name for p in _generated(demo_fleet)] == ["kvm02"]
    unknown = run_cli("generate", "kvm99", root=demo_fleet)
    assert unknown.code == 2
    assert "hosts/kvm99: no such host (expected hosts/kvm99/host.toml)" in unknown.err


def test_invalid_fleet_writes_nothing(demo_fleet: Path) -> None:
    for path in _generated(demo_fleet):
        path.unlink()
    bad = demo_fleet / "hosts" / "kvm02" / "host.toml"
    bad.write_text(bad.read_text().replace('table = "gpt"', 'table = "guid"'))
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert (
        'hosts/kvm02/host.toml: disk.table: "guid" is not valid: expected "msdos" or "gpt"'
        in result.err
    )
    assert _generated(demo_fleet) == []


def test_check_command(demo_fleet: Path) -> None:
    result = run_cli("check", root=demo_fleet)
    assert result.code == 0
    assert "3 hosts valid" in result.out


def test_show_names_the_source_of_each_value(demo_fleet: Path) -> None:
    result = run_cli("show", "kvm01", root=demo_fleet)
    assert result.code == 0
    lines = result.out.splitlines()
    assert any(
        line.startswith('host.timezone = "Europe/Amsterdam"') and line.endswith("# hosts/site.toml")
        for line in lines
    )
    assert any(
        line.startswith('ceph.fsid = "b0c3f8f0')
        and line.endswith("# hosts/site.toml [roles.hypervisor]")
        for line in lines
    )
    assert any(
        line.startswith('host.roles = ["hypervisor"]') and line.endswith("# hosts/kvm01/host.toml")
        for line in lines
    )
    doc = json.loads(run_cli("show", "kvm01", "--json", root=demo_fleet).out)
    assert {"key": "disk.table", "value": "msdos", "from": "hosts/kvm01/host.toml"} in doc["values"]


def test_new_copies_comments_and_clears_unique_values(demo_fleet: Path) -> None:
    # A source host that declares its GUID (the demo fleet leaves it derived).
    source = demo_fleet / "hosts" / "kvm01" / "host.toml"
    source.write_text(
        source.read_text().replace(
            "[cloudstack]\n", '[cloudstack]\nguid = "6f1c8e52-9c1b-4f0e-8a7d-2b4e5f6a7c01"\n', 1
        )
    )
    result = run_cli("new", "kvm03", "--like", "kvm01", root=demo_fleet)
    assert result.code == 0, result.err
    text = (demo_fleet / "hosts" / "kvm03" / "host.toml").read_text()
    assert "# Physical NICs, named by their permanent MAC address." in text
    # kvm01's opening comment describes kvm01: the copy starts with its own.
    assert text.splitlines()[0].startswith("# kvm03: created by `kvmfleet new kvm03 --like kvm01`")
    assert not text.splitlines()[1].startswith("#")
    assert "# kvm01:" not in text
    data = tomllib.loads(text)
    assert data["iscsi"]["initiator_name"] == "iqn.2026-11.net.example.cloud:kvm03"
    # Add Host derives the GUID from the new host's address: the copied one is removed.
    assert "guid" not in data["cloudstack"]
    assert "cloudstack.guid: removed; it defaults to the value derived for kvm03" in result.out
    assert "iscsi.initiator_name: given a fresh unique value" in result.out
    assert data["network"]["links"]["p9p1"] == ""
    assert '# must be unique: was "14:fe:b5:c6:62:e0" in kvm01' in text
    assert data["network"]["bridges"]["cloudbr0"]["addresses"] == ["", ""]
    assert data["network"]["bonds"]["bond0"]["hwaddress"] not in {"", "fe:80:12:04:6d:6f"}
    assert "network.links.p9p1: cleared; fill in a value unique in the fleet" in result.out
    check = run_cli("check", root=demo_fleet)
    assert check.code == 2
    assert 'hosts/kvm03/host.toml: network.links.p9p1: "" is not a MAC address' in check.err
    again = run_cli("new", "kvm03", "--like", "kvm01", root=demo_fleet)
    assert again.code == 2
    assert "hosts/kvm03/host.toml: already exists; not overwriting it" in again.err


def test_new_rejects_bad_names(demo_fleet: Path) -> None:
    result = run_cli("new", "KVM_3", "--like", "kvm01", root=demo_fleet)
    assert result.code == 2
    assert result.err.startswith(
        'hosts/KVM_3: "KVM_3" is not a valid host name (the directory name'
    )
    assert not (demo_fleet / "hosts" / "KVM_3").exists()


def test_schema_is_written_and_lists_every_table(demo_fleet: Path) -> None:
    result = run_cli("schema", root=demo_fleet)
    assert result.code == 0
    host = json.loads((demo_fleet / "hosts" / "host.schema.json").read_text())
    assert {"host", "boot", "disk", "network", "iscsi", "ceph", "cloudstack", "battery"} <= set(
        host["properties"]
    )
    assert "required" not in json.dumps(host)
    site = json.loads((demo_fleet / "hosts" / "site.schema.json").read_text())
    assert set(site["properties"]["roles"]["properties"]) == set(ROLES)
    # The demo fleet's committed schemas are current: a second run says so and touches nothing.
    assert result.out.splitlines() == [
        "hosts/host.schema.json: unchanged",
        "hosts/site.schema.json: unchanged",
    ]
    (demo_fleet / "hosts" / "site.schema.json").write_text("{}\n")
    again = run_cli("schema", root=demo_fleet)
    assert again.out.splitlines() == [
        "hosts/host.schema.json: unchanged",
        "hosts/site.schema.json: written",
    ]


def test_missing_hosts_directory(tmp_path: Path) -> None:
    result = run_cli("check", root=tmp_path)
    assert result.code == 2
    assert "hosts: no such directory" in result.err


@pytest.mark.parametrize(
    "command", [[], ["generate"], ["check"], ["show"], ["new"], ["schema"], ["secrets"]]
)
def test_help_everywhere(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvmfleet", *command, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "example" in result.stdout


def test_untracked_host_directory_is_warned_about(demo_fleet: Path) -> None:
    subprocess.run(["git", "init", "-q", str(demo_fleet)], check=True)
    result = run_cli("generate", root=demo_fleet)
    assert "warning: hosts/kvm01/ has files git does not track" in result.err
    # the hosts' sops files too: the flake reads them
    subprocess.run(["git", "-C", str(demo_fleet), "add", "hosts", "secrets"], check=True)
    assert "git does not track" not in run_cli("generate", root=demo_fleet).err


def test_repo_root_is_clean() -> None:
    assert run_cli("check", root=REPO).code == 0


def test_inventory_reference_is_up_to_date() -> None:
    result = run_cli("schema", "--markdown")
    assert result.code == 0
    assert (REPO / "docs" / "inventory.md").read_text() == result.out, (
        "run: kvmfleet schema --markdown > docs/inventory.md"
    )


def test_new_from_a_host_with_inline_tables_writes_valid_toml(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm02" / "host.toml"
    text = host.read_text()
    text = text.replace(
        '[network.links]\neno1 = "3c:ec:ef:10:20:01"\neno2 = "3c:ec:ef:10:20:02"\n'
        'san0 = "3c:ec:ef:10:20:11"\nsan1 = "3c:ec:ef:10:20:12"\n',
        '[network]\nlinks = { eno1 = "3c:ec:ef:10:20:01", eno2 = "3c:ec:ef:10:20:02", '
        'san0 = "3c:ec:ef:10:20:11", san1 = "3c:ec:ef:10:20:12" }\n',
    )
    host.write_text(text)
    assert run_cli("check", root=demo_fleet).code == 0
    result = run_cli("new", "kvm09", "--like", "kvm02", root=demo_fleet)
    assert result.code == 0, result.err
    data = tomllib.loads((demo_fleet / "hosts" / "kvm09" / "host.toml").read_text())
    assert data["network"]["links"]["eno1"] == ""


def test_host_toml_that_is_not_a_file_is_an_error_not_a_removed_host(demo_fleet: Path) -> None:
    host_toml = demo_fleet / "hosts" / "kvm01" / "host.toml"
    host_toml.unlink()
    host_toml.mkdir()
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert "hosts/kvm01/host.toml: is not a regular file" in result.err
    assert (demo_fleet / "hosts" / "kvm01" / "generated.nix").exists()


def test_generated_path_that_is_not_a_file_blocks_every_write(demo_fleet: Path) -> None:
    target = demo_fleet / "hosts" / "kvm01" / "generated.nix"
    target.unlink()
    target.mkdir()
    (demo_fleet / "hosts" / "kvm02" / "generated.nix").unlink()
    for args in (["generate"], ["generate", "--force"]):
        result = run_cli(*args, root=demo_fleet)
        assert result.code == 2, result.err
        assert "hosts/kvm01/generated.nix: not a regular file" in result.err
        assert not (demo_fleet / "hosts" / "kvm02" / "generated.nix").exists()
    target.rmdir()
    os.mkfifo(target)  # --check must not block reading it
    check = run_cli("generate", "--check", root=demo_fleet)
    assert check.code == 1
    assert "hosts/kvm01/generated.nix: not a regular file" in check.out


def test_hand_edited_orphan_is_kept_but_does_not_block(demo_fleet: Path) -> None:
    assert run_cli("generate", root=demo_fleet).code == 0
    hosts = demo_fleet / "hosts"
    (hosts / "x1carbon" / "host.toml").unlink()
    generated = hosts / "x1carbon" / "generated.nix"
    generated.write_text(generated.read_text() + "# note\n")
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 0, result.err
    assert "warning: hosts/x1carbon/generated.nix: left in place" in result.err
    assert generated.exists()
    assert "0 written" in result.out
    assert run_cli("generate", "--check", root=demo_fleet).code == 1


def test_deep_nesting_and_byte_order_mark(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm02" / "host.toml"
    original = host.read_text()
    host.write_text("\ufeff" + original)
    assert run_cli("check", root=demo_fleet).code == 0
    host.write_text(original + "[" + ".".join(["x"] * 500) + "]\n")
    result = run_cli("check", root=demo_fleet)
    assert result.code == 2
    assert "hosts/kvm02/host.toml: nested deeper than 32 levels" in result.err
    host.write_text(original + "deep = " + "[" * 600 + "]" * 600 + "\n")
    result = run_cli("check", root=demo_fleet)
    assert result.code == 2
    assert "Traceback" not in result.err


def test_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    assert run_cli("schema", root=tmp_path).code == 0
    for name in ("host.schema.json", "site.schema.json"):
        assert (REPO / "hosts" / name).read_text() == (tmp_path / "hosts" / name).read_text(), (
            "run: kvmfleet schema"
        )


def test_a_host_made_invalid_by_site_toml_is_never_skipped_silently(
    demo_fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kvmfleet.site

    site = demo_fleet / "hosts" / "site.toml"
    site.write_text(
        site.read_text().replace('timezone = "Europe/Amsterdam"', 'timezone = "Mars/Olympus"')
    )
    reported = run_cli("check", root=demo_fleet)
    assert reported.code == 2
    assert reported.err.count("Mars/Olympus") == 1  # once, at site.toml, not once per host
    monkeypatch.setattr(kvmfleet.site, "check_site", lambda site, site_file: [])
    result = run_cli("check", root=demo_fleet)
    assert result.code == 2
    assert (
        "hosts/kvm01/host.toml: is invalid through a value it inherits from site.toml" in result.err
    )


def test_new_names_the_site_toml_error_that_blocks_it(demo_fleet: Path) -> None:
    site = demo_fleet / "hosts" / "site.toml"
    site.write_text(
        site.read_text().replace('timezone = "Europe/Amsterdam"', 'timezone = "Mars/Base"')
    )
    result = run_cli("new", "kvm03", "--like", "kvm01", root=demo_fleet)
    assert result.code == 2
    assert 'hosts/site.toml: host.timezone: "Mars/Base" is not a time zone' in result.err


def test_schema_is_never_written_through_a_link(demo_fleet: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    schema = demo_fleet / "hosts" / "site.schema.json"
    schema.unlink()
    schema.symlink_to(outside)
    result = run_cli("schema", root=demo_fleet)
    assert result.code == 2
    assert result.err == (
        "kvmfleet: hosts/site.schema.json: is a symbolic link: kvmfleet writes and deletes "
        "nothing through links (it could land outside the repository); make it a real "
        "directory or file\n"
    )
    assert outside.read_text() == "keep"
    assert schema.is_symlink()


def test_generate_never_writes_through_a_linked_host_directory(
    demo_fleet: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    shutil.move(demo_fleet / "hosts" / "kvm02", outside)
    (demo_fleet / "hosts" / "kvm02").symlink_to(outside)
    (outside / "generated.nix").unlink()
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert "hosts/kvm02: is a symbolic link" in result.err
    assert not (outside / "generated.nix").exists()


def test_new_keeps_a_schema_directive_but_not_the_source_hosts_description() -> None:
    from kvmfleet.scaffold import _without_header

    text = "#:schema ../host.schema.json\n# kvm01: the first hypervisor\n\n[host]\n# kept\nx = 1\n"
    assert _without_header(text) == "#:schema ../host.schema.json\n\n[host]\n# kept\nx = 1\n"
    assert _without_header("[host]\nx = 1\n") == "[host]\nx = 1\n"


def test_the_command_leaves_with_every_line_written_and_its_code(demo_fleet: Path) -> None:
    """`kvmfleet` skips the interpreter's teardown (cli.entry): what it printed still arrives in
    full, through a pipe and through a reader that goes away, and the exit code is main's."""

    def command(*args: str) -> list[str]:
        return [sys.executable, "-m", "kvmfleet", "--root", str(demo_fleet), *args]

    done = subprocess.run(command("generate"), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "kvmfleet: 3 hosts; files: 0 written, 4 unchanged\n"
    listed = subprocess.run(command("show", "kvm01"), capture_output=True, text=True, check=False)
    assert listed.returncode == 0
    assert listed.stdout == run_cli("show", "kvm01", root=demo_fleet).out
    # a reader that stops after the first line
    head = subprocess.run(
        f"{' '.join(command('show', 'kvm01'))} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert head.stdout == listed.stdout.splitlines(keepends=True)[0]
    assert "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr
    path = demo_fleet / "hosts" / "kvm01" / "host.toml"
    path.write_text(path.read_text() + "\n[nonsense]\n")
    broken = subprocess.run(command("check"), capture_output=True, text=True, check=False)
    assert broken.returncode == 2
    assert broken.stderr.splitlines()[-1] == "kvmfleet: 1 error"
    assert broken.stderr.startswith("hosts/kvm01/host.toml: nonsense: unknown key")
