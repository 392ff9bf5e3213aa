"""Layering of site.toml, role tables and host.toml, and the provenance of every value."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from kvmfleet.inventory import Layer, layer_host, load, scan_hosts
from kvmfleet.problems import InventoryError

SITE = "hosts/site.toml"
HOST = "hosts/a/host.toml"


def test_layers_apply_in_order_tables_merge_scalars_and_arrays_replace() -> None:
    site = {
        "host": {"timezone": "UTC", "domain": "site.example"},
        "packages": {"extra": ["wget", "git"]},
        "roles": {
            "hypervisor": {
                "host": {"timezone": "Europe/Amsterdam"},
                "packages": {"extra": ["tmux"]},
            },
            "laptop": {"host": {"timezone": "Europe/Berlin"}},
        },
    }
    host = {"host": {"roles": ["hypervisor"], "domain": "host.example"}}
    inv = layer_host("a", HOST, host, SITE, site)
    assert inv.data["host"] == {
        "timezone": "Europe/Amsterdam",
        "domain": "host.example",
        "roles": ["hypervisor"],
    }
    assert inv.data["packages"] == {"extra": ["tmux"]}
    assert inv.origin(("host", "timezone")) == Layer(SITE, "hypervisor")
    assert inv.origin(("host", "domain")) == Layer(HOST)
    assert inv.origin(("packages", "extra", 0)) == Layer(SITE, "hypervisor")
    assert inv.layers == (Layer(SITE), Layer(SITE, "hypervisor"), Layer(HOST))
    assert "roles" not in inv.data


def test_roles_apply_in_the_hosts_order() -> None:
    site = {
        "roles": {
            "hypervisor": {"host": {"timezone": "A/A"}},
            "laptop": {"host": {"timezone": "B/B"}},
        }
    }
    first = layer_host("a", HOST, {"host": {"roles": ["hypervisor", "laptop"]}}, SITE, site)
    second = layer_host("a", HOST, {"host": {"roles": ["laptop", "hypervisor"]}}, SITE, site)
    assert first.data["host"]["timezone"] == "B/B"
    assert second.data["host"]["timezone"] == "A/A"


def test_a_replaced_table_value_forgets_old_children() -> None:
    site = {"network": {"dns": ["10.0.0.53", "10.0.0.54"]}}
    inv = layer_host("a", HOST, {"network": {"dns": ["10.0.0.1"]}}, SITE, site)
    assert inv.data["network"]["dns"] == ["10.0.0.1"]
    assert inv.origin(("network", "dns", 1)) == Layer(HOST)


def test_layering_does_not_mutate_the_site() -> None:
    site = {"host": {"timezone": "UTC"}, "packages": {"extra": ["wget"]}}
    inv = layer_host("a", HOST, {"packages": {"extra": ["git"]}}, SITE, site)
    inv.data["host"]["timezone"] = "changed"
    assert site == {"host": {"timezone": "UTC"}, "packages": {"extra": ["wget"]}}


def test_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "hosts" / "a").mkdir(parents=True)
    (tmp_path / "hosts" / "a" / "host.toml").write_text('[host]\nstate_version = "26.05\n')
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    (problem,) = exc.value.problems
    assert str(problem).startswith("hosts/a/host.toml: TOML syntax error: line 2, column ")


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "hosts" / "a").mkdir(parents=True)
    (tmp_path / "hosts" / "a" / "host.toml").write_bytes(b'[host]\nx = "\xff"\n')
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    assert "not UTF-8 text" in str(exc.value)


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_directory_that_is_not_a_host_is_reported(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    (hosts / "empty").mkdir(parents=True)
    _write(hosts / "gone" / "generated.nix")
    _write(hosts / "_kvm02" / "host.toml")
    _write(hosts / ".x1carbon" / "host.toml")
    _write(hosts / "kvm05" / "hosts.toml")
    _write(hosts / "kvm06" / "host.TOML")
    inv = load(tmp_path)
    assert inv.hosts == ()
    assert inv.stray_dirs == ("gone",)
    assert [str(p) for p in inv.problems] == [
        'warning: hosts/.x1carbon: not a host directory: ".x1carbon" is not a valid host name '
        "(the directory name is the host name: lower-case letters, digits and '-', 1 to 63 "
        "characters, not starting or ending with '-'); ignored",
        'warning: hosts/_kvm02: not a host directory: "_kvm02" is not a valid host name '
        "(the directory name is the host name: lower-case letters, digits and '-', 1 to 63 "
        "characters, not starting or ending with '-'); ignored",
        "warning: hosts/empty: not a host directory: no host.toml; ignored",
        'warning: hosts/kvm05: not a host directory: no host.toml (found "hosts.toml": did you '
        "mean host.toml?); ignored",
        'warning: hosts/kvm06: not a host directory: no host.toml (found "host.TOML": did you '
        "mean host.toml?); ignored",
    ]


def test_an_invalid_host_name_with_a_host_file_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "hosts" / "Kvm01" / "host.toml")
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    assert [str(p) for p in exc.value.problems] == [
        'hosts/Kvm01: "Kvm01" is not a valid host name (the directory name is the host name: '
        "lower-case letters, digits and '-', 1 to 63 characters, not starting or ending with '-')"
    ]


LINK = (
    "is a symbolic link: kvmfleet never reads or writes through links in the inventory "
    "(make it a real file or directory)"
)


def test_a_linked_host_directory_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "hosts" / "x1carbon" / "host.toml")
    (tmp_path / "hosts" / "x2").symlink_to("x1carbon")
    (tmp_path / "hosts" / "dangling").symlink_to("nowhere")
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    assert [str(p) for p in exc.value.problems] == [
        f"hosts/dangling: {LINK}",
        f"hosts/x2: {LINK}",
    ]


def test_linked_input_files_and_hosts_dir_are_refused(tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside.toml", "[host]\n")
    _write(tmp_path / "fleet" / "hosts" / "a" / "dummy")
    (tmp_path / "fleet" / "hosts" / "a" / "host.toml").symlink_to(outside)
    (tmp_path / "fleet" / "hosts" / "site.toml").symlink_to(outside)
    with pytest.raises(InventoryError) as exc:
        load(tmp_path / "fleet")
    assert [str(p) for p in exc.value.problems] == [
        f"hosts/a/host.toml: {LINK}",
        f"hosts/site.toml: {LINK}",
    ]
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "hosts").symlink_to(tmp_path / "fleet" / "hosts")
    with pytest.raises(InventoryError) as exc:
        load(tmp_path / "linked")
    assert [str(p) for p in exc.value.problems] == [f"hosts: {LINK}"]


def test_a_lone_cr_is_not_a_line_break(tmp_path: Path) -> None:
    # `cat` shows only the text after the CR; TOML (and so kvmfleet) must reject the line.
    text = b'[host]\ndomain = "a.example"\r[ssh]\n'
    path = tmp_path / "hosts" / "a" / "host.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(text)
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    (problem,) = exc.value.problems
    assert str(problem).startswith("hosts/a/host.toml: TOML syntax error: line 2, column ")


def test_crlf_line_endings_are_still_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hosts" / "a" / "host.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'[host]\r\ndomain = "a.example"\r\n')
    assert load(tmp_path).hosts[0].data == {"host": {"domain": "a.example"}}


def test_the_flake_and_the_generator_agree_on_what_a_host_is(
    tmp_path: Path, nix_eval: Callable[[Path], Any]
) -> None:
    hosts = tmp_path / "hosts"
    for name in ("kvm01", "kvm02", "_kvm03", ".kvm04", "Kvm05", "kvm06", "gone", "kvm-07"):
        _write(hosts / name / "generated.nix")
    for name in ("kvm01", "_kvm03", ".kvm04", "Kvm05", "kvm-07"):
        _write(hosts / name / "host.toml")
    _write(hosts / "kvm02" / "hosts.toml")
    (hosts / "kvm06" / "host.toml").mkdir()
    (hosts / "linked").symlink_to("kvm01")
    expr = tmp_path / "names.nix"
    expr.write_text(f"import {REPO / 'lib' / 'host-names.nix'} {hosts}\n")
    flake_hosts = nix_eval(expr)
    scan = scan_hosts(tmp_path)
    with_generated = [n for n in scan.hosts if (hosts / n / "generated.nix").is_file()]
    assert flake_hosts == with_generated == ["kvm-07", "kvm01"]


def test_an_unreadable_host_directory_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "hosts" / "a" / "host.toml")
    locked = tmp_path / "hosts" / "a" / "host.toml"
    real_lstat = os.lstat

    def lstat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    assert [str(p) for p in exc.value.problems] == ["hosts/a: cannot be read (permission denied?)"]
