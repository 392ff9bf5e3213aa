"""The install VM test's inventory (checks/install/hosts/): up to date, and laid out as the test
script expects (root on /dev/vda1, swap on /dev/vda2, GRUB on /dev/vda, a host name other than
the test node's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO, fleet_settings

CHECKS = REPO / "checks" / "install"


def test_vm_test_inventory_matches_the_test_script() -> None:
    script = (REPO / "checks" / "install.nix").read_text()
    s = fleet_settings(CHECKS, "fresh01")
    # the test asserts the installed system's host name: it must not be the node's own
    assert s["networking"]["hostName"] == "fresh01"
    assert 'name = "fresh01";' in script
    assert "target = {" in script
    disk = s["disko"]["devices"]["disk"]["main"]
    assert disk["device"] == "/dev/vda"
    root, swap = disk["content"]["partitions"]
    assert root["content"] == {"type": "filesystem", "format": "xfs", "mountpoint": "/"}
    assert swap["content"] == {"type": "swap"}
    assert '["/dev/vda1", "xfs"]' in script
    assert "/dev/vda2" in script
    assert s["boot"]["loader"]["grub"]["devices"] == ["/dev/vda"]


def test_vm_test_generated_file_evaluates_to_the_settings(
    nix_eval: Callable[[Path], Any],
) -> None:
    evaluated = nix_eval(CHECKS / "hosts" / "fresh01" / "generated.nix")
    assert evaluated == fleet_settings(CHECKS, "fresh01")
