"""Layering of site.toml, role tables and host.toml, and the provenance of every value."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmfleet.inventory import Layer, layer_host, load
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


def test_directories_without_host_toml_are_strays_and_dot_dirs_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "hosts" / "old").mkdir(parents=True)
    (tmp_path / "hosts" / ".cache").mkdir()
    inv = load(tmp_path)
    assert inv.hosts == ()
    assert inv.stray_dirs == ("old",)
