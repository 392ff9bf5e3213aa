"""Arbitrary TOML data never produces a traceback: either a valid fleet or one-line problems."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from kvmfleet.generate import build, render_host
from kvmfleet.problems import InventoryError

KEYS = st.sampled_from(
    [
        "host",
        "boot",
        "disk",
        "network",
        "bonds",
        "bond0",
        "links",
        "ssh",
        "iscsi",
        "ceph",
        "cloudstack",
        "battery",
        "limits",
        "printing",
        "printers",
        "quassel",
        "listen",
        "sysctl",
        "time",
        "servers",
        "users",
        "groups",
        "hashed_password_file",
        "roles",
        "mode",
        "hwaddress",
        "addresses",
        "slaves",
        "x",
        "key",
        "password",
    ]
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["802.3ad", "fe:80:12:04:6d:6f", "10.0.0.1/24", "grub", "gpt", "eth0"]),
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(KEYS | st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=15,
)


def _mutate(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node = base
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
    return base


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.lists(KEYS, min_size=1, max_size=4), value=TOML_VALUES)
def test_any_change_to_a_valid_host_is_handled(tmp_path: Path, path: list[str], value: Any) -> None:
    host = tomllib.loads((REPO / "hosts" / "kvm01" / "host.toml").read_text())
    host = _mutate(host, path, value)
    fleet_dir = tmp_path / "hosts"
    (fleet_dir / "kvm01").mkdir(parents=True, exist_ok=True)
    (fleet_dir / "site.toml").write_text((REPO / "hosts" / "site.toml").read_text())
    (fleet_dir / "kvm01" / "host.toml").write_text(tomlkit.dumps(host))
    try:
        fleet = build(tmp_path)
    except InventoryError as exc:
        assert exc.problems
        for problem in exc.problems:
            line = str(problem)
            assert "\n" not in line
            assert line.startswith(("hosts/", "warning: hosts/"))
        return
    for result in fleet.hosts:
        assert render_host(result)
