"""The demo fleet (hosts/) always generates; its committed files are the golden output, and real
Nix reads every generated file back as exactly the settings the generator meant."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_cli
from kvmfleet.generate import build, render_host

DEMO_HOSTS = sorted(p.parent.name for p in (REPO / "hosts").glob("*/host.toml"))


def test_demo_fleet_is_the_shared_contract() -> None:
    assert {"kvm01", "kvm02", "x1carbon"} <= set(DEMO_HOSTS)


def test_demo_fleet_generated_files_are_up_to_date() -> None:
    result = run_cli("generate", "--check", root=REPO)
    assert result.code == 0, result.out + result.err


def test_demo_fleet_is_the_shared_example() -> None:
    """hosts/ is ../shared/examples/hosts (when that folder is beside the repo): the inventory
    contract, adopted verbatim."""
    shared = REPO.parent / "shared" / "examples" / "hosts"
    if not shared.is_dir():
        pytest.skip("the shared examples are not beside this checkout")
    for example in sorted(shared.rglob("*.toml")):
        ours = REPO / "hosts" / example.relative_to(shared)
        assert ours.read_bytes() == example.read_bytes(), ours


def test_demo_fleet_generates_without_a_warning(demo_fleet: Path) -> None:
    """The demo fleet is the example users copy: it follows every piece of the tool's advice."""
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 0, result.out + result.err
    assert "warning" not in result.err + result.out, result.err


def test_generation_is_deterministic(demo_fleet: Path) -> None:
    first = {r.name: render_host(r) for r in build(demo_fleet).hosts}
    second = {r.name: render_host(r) for r in build(demo_fleet).hosts}
    assert first == second
    for name, text in first.items():
        assert (REPO / "hosts" / name / "generated.nix").read_text() == text


@pytest.mark.parametrize("host", DEMO_HOSTS)
def test_generated_module_evaluates_to_the_intended_settings(
    host: str, nix_eval: Callable[[Path], Any]
) -> None:
    fleet = build(REPO)
    (result,) = [r for r in fleet.hosts if r.name == host]
    evaluated = nix_eval(REPO / "hosts" / host / "generated.nix")
    assert evaluated == json.loads(json.dumps(result.settings))


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|''(?:[^']|'''|''\$|''\\.|'(?!'))*''")
# Outside strings, pure data has only attribute names, literals and punctuation.
_CODE = re.compile(
    r"(?<![\w-])(import|pkgs|lib|builtins|config|with|let|rec|inherit|if)(?![\w-])|\$\{|:\s"
)


@pytest.mark.parametrize("host", DEMO_HOSTS)
def test_generated_module_is_pure_data(host: str) -> None:
    text = (REPO / "hosts" / host / "generated.nix").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert body.startswith("{") and body.endswith("}")
    outside_strings = _STRING.sub('""', body)
    assert _CODE.search(outside_strings) is None, outside_strings
