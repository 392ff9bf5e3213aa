"""The CLI's edges: links, odd files, and a file system or stream that refuses, each one line."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import kvmfleet.cli
from conftest import run_cli

LINK = (
    "is a symbolic link: kvmfleet never reads or writes through links in the inventory "
    "(make it a real file or directory)"
)


def test_generate_refuses_a_linked_host_directory_and_writes_nothing(
    demo_fleet: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(demo_fleet / "hosts" / "x1carbon", outside)
    (outside / "generated.nix").unlink()
    (demo_fleet / "hosts" / "x2").symlink_to(outside)
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert f"hosts/x2: {LINK}" in result.err.splitlines()
    assert not (outside / "generated.nix").exists()


def test_an_orphan_behind_a_link_is_never_deleted(demo_fleet: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(demo_fleet / "hosts" / "kvm02" / "generated.nix", outside / "generated.nix")
    (demo_fleet / "hosts" / "old").symlink_to(outside)
    assert run_cli("generate", root=demo_fleet).code == 2
    assert (outside / "generated.nix").exists()


def test_new_refuses_a_linked_or_odd_target(demo_fleet: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (demo_fleet / "hosts" / "kvm03").symlink_to(tmp_path / "elsewhere")
    result = run_cli("new", "kvm03", "--like", "kvm01", root=demo_fleet)
    assert (result.code, result.err.splitlines()[0]) == (2, f"hosts/kvm03: {LINK}")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    (demo_fleet / "hosts" / "kvm04").write_text("a file")
    result = run_cli("new", "kvm04", "--like", "kvm01", root=demo_fleet)
    assert (result.code, result.err.splitlines()[0]) == (
        2,
        "hosts/kvm04: exists and is not a directory; not touching it",
    )
    (demo_fleet / "hosts" / "kvm05").symlink_to("nowhere")
    result = run_cli("new", "kvm05", "--like", "kvm01", root=demo_fleet)
    assert (result.code, result.err.splitlines()[0]) == (2, f"hosts/kvm05: {LINK}")


def test_a_file_system_that_refuses_a_write_is_one_line(
    demo_fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(target: Path, content: str, **_: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(target))

    monkeypatch.setattr(kvmfleet.cli, "write_atomic", read_only)
    (demo_fleet / "hosts" / "host.schema.json").unlink()  # a current file is not written again
    result = run_cli("schema", root=demo_fleet)
    assert result.code == 2
    assert result.err.splitlines() == [
        f"kvmfleet: {demo_fleet / 'hosts' / 'host.schema.json'}: Read-only file system"
    ]


class _FullStream:
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_stdout_is_one_line(demo_fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    real = sys.stdout
    sys.stdout = _FullStream()  # type: ignore[assignment]
    try:
        code = kvmfleet.cli.main(["--root", str(demo_fleet), "show", "kvm01"])
    finally:
        sys.stdout = real
    assert code == 2
    assert capsys.readouterr().err.splitlines() == ["kvmfleet: No space left on device"]


def test_show_json_is_strict_json(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm01" / "host.toml"
    host.write_text(host.read_text() + "\n[weird]\na = nan\nb = -inf\n")
    result = run_cli("show", "kvm01", "--json", root=demo_fleet)
    assert result.code == 0

    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON")

    values = {
        v["key"]: v["value"] for v in json.loads(result.out, parse_constant=no_constants)["values"]
    }
    assert (values["weird.a"], values["weird.b"]) == ("nan", "-inf")


def test_a_huge_value_is_shortened_in_its_message(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm01" / "host.toml"
    host.write_text(
        host.read_text().replace("[host]\n", '[host]\ndomain = "' + "x" * 1_000_000 + '"\n')
    )
    result = run_cli("check", root=demo_fleet)
    assert result.code == 2
    (line,) = [line for line in result.err.splitlines() if "host.domain" in line]
    assert len(line) < 300
    assert "(1000000 characters)" in line
