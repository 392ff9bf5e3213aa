"""The network VM test's inventory (checks/network/hosts/): up to date, matching the test driver's
NICs, and evaluating to exactly the intended settings."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO, copy_fleet
from kvmfleet.generate import build

CHECKS = REPO / "checks" / "network"


def test_vm_test_inventory_matches_the_test_driver() -> None:
    """checks/network.nix puts lan0 on vlan 1 and lan1 on vlan 2; the driver numbers nodes in name
    order and gives their NICs 52:54:00:12:<vlan>:<node>."""
    hosts = sorted(p.parent.name for p in CHECKS.glob("hosts/*/host.toml"))
    assert hosts == ["lacp1", "lacp2"]
    for node, name in enumerate(hosts, start=1):
        links = tomllib.loads((CHECKS / "hosts" / name / "host.toml").read_text())["network"][
            "links"
        ]
        assert links == {f"lan{vlan - 1}": f"52:54:00:12:{vlan:02x}:{node:02x}" for vlan in (1, 2)}
    fixed = tomllib.loads((CHECKS / "hosts" / "lacp1" / "host.toml").read_text())
    assert "hwaddress" in fixed["network"]["bonds"]["bond0"]
    derived = tomllib.loads((CHECKS / "hosts" / "lacp2" / "host.toml").read_text())
    assert "hwaddress" not in derived["network"]["bonds"]["bond0"]


def test_vm_test_modules_evaluate_to_the_intended_settings(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    root = copy_fleet(CHECKS, tmp_path / "network")
    for result in build(root).hosts:
        evaluated = nix_eval(root / "hosts" / result.name / "generated.nix")
        assert evaluated == json.loads(json.dumps(result.settings))
