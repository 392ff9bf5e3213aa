"""checks/_host.nix: a VM test node imports its test host's whole generated module, less only the
`nixpkgs` set that the test framework's read-only pkgs forbid and the disko layout of the real
machine's disk, and only on the test's platform."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from kvmfleet.generate import build

HELPER = REPO / "checks" / "_host.nix"
HOSTS = REPO / "checks" / "network" / "hosts"


def _node(tmp_path: Path, system: str, host: str) -> Path:
    expr = tmp_path / "node.nix"
    expr.write_text(f'import {HELPER} {{ system = "{system}"; }} {HOSTS / host}\n')
    return expr


@pytest.mark.parametrize("host", ["lacp1", "lacp2"])
def test_a_node_gets_the_whole_generated_module_but_nixpkgs_and_disko(
    nix_eval: Callable[[Path], Any], tmp_path: Path, host: str
) -> None:
    module = nix_eval(_node(tmp_path, "x86_64-linux", host))
    assert module.pop("_file") == str(HOSTS / host / "generated.nix")
    (result,) = [r for r in build(HOSTS.parent).hosts if r.name == host]
    intended = json.loads(json.dumps(result.settings))
    assert intended.pop("nixpkgs") == {"hostPlatform": "x86_64-linux"}
    assert "devices" in intended.pop("disko")
    assert module == intended


def test_a_host_of_another_platform_is_refused(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="a x86_64-linux host cannot be a node of a "):
        nix_eval(_node(tmp_path, "aarch64-linux", "lacp1"))
