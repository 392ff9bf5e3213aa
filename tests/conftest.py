"""Shared test helpers: running the CLI in-process, evaluating Nix with the real interpreter, and a
kit for capability tests (a host.toml from tables, its settings and findings)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import HostContext, Identity, Settings
from kvmfleet.cli import main
from kvmfleet.generate import build, host_settings
from kvmfleet.model import Host
from kvmfleet.problems import Severity

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run_cli(*args: str, root: Path | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    argv = (["--root", str(root)] if root is not None else []) + list(args)
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return Run(code, out.getvalue(), err.getvalue())


def copy_fleet(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def _nix_instantiate() -> str | None:
    return shutil.which("nix-instantiate")


def nix_eval_file(path: Path) -> Any:
    """Evaluate a Nix file to JSON with the real interpreter (no store writes: works in a sandbox)."""
    binary = _nix_instantiate()
    assert binary is not None
    env = dict(os.environ)
    env.setdefault("NIX_STATE_DIR", str(path.parent / ".nix-state"))
    result = subprocess.run(
        [binary, "--eval", "--strict", "--json", "--store", "dummy://", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"nix-instantiate failed on {path}:\n{result.stderr}")
    return json.loads(result.stdout)


@pytest.fixture
def nix_eval() -> Callable[[Path], Any]:
    """Nix-based tests skip without Nix, but fail when CI is set (CI must have Nix)."""
    if _nix_instantiate() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "nix-instantiate is not on PATH, and CI is set: install Nix (Debian: nix-bin)"
            )
        pytest.skip("nix-instantiate not found (install Nix to run the round-trip tests)")
    return nix_eval_file


@pytest.fixture
def demo_fleet(tmp_path: Path) -> Path:
    """A copy of the repo's demo fleet (hosts/ with its committed generated files, and its
    secrets: secrets/ and the generated .sops.yaml)."""
    root = copy_fleet(REPO / "hosts", tmp_path / "fleet" / "hosts").parent
    copy_fleet(REPO / "secrets", root / "secrets")
    shutil.copy(REPO / ".sops.yaml", root / ".sops.yaml")
    return root


# --- capability test kit --------------------------------------------------------------------------

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChhW7FE3vJp5dpC2LOVbP50kn6XI6Qa8SjfTyX4HXtz admin@example.net"
# The least a valid host.toml has: every capability's test starts from it.
MINIMAL_HOST: dict[str, dict[str, Any]] = {
    "host": {"state_version": "26.05"},
    "boot": {"loader": "grub"},
    "disk": {"device": "/dev/sda", "table": "msdos"},
    "ssh": {"authorized_keys": [SSH_KEY]},
}


def host_toml(extra: str = "", **tables: dict[str, Any]) -> str:
    """A valid host.toml: the minimal host, each keyword a table merged over it key by key
    (`host_toml(host={"max_guests": 10}, network={...})`), then `extra` TOML text appended
    (for tables easier to read as TOML)."""
    data: dict[str, Any] = {name: dict(table) for name, table in MINIMAL_HOST.items()}
    for name, table in tables.items():
        data[name] = {**data.get(name, {}), **table}
    return tomlkit.dumps(data) + ("\n" + extra if extra else "")


def host_of(text: str) -> Host:
    """The typed host of a host.toml text (no site.toml)."""
    return Host.model_validate(tomllib.loads(text))


def settings_of(text: str, name: str = "a") -> Settings:
    """Every capability's merged NixOS settings for a host.toml text (no site.toml)."""
    return host_settings(HostContext(name, host_of(text)))


def fleet_settings(root: Path, name: str) -> Settings:
    """One host's settings from a whole fleet on disk (the demo fleet, a VM test's inventory)."""
    (result,) = [r for r in build(root).hosts if r.name == name]
    return result.settings


def findings_of(text: str, capability: str | None = None, name: str = "a") -> list[str]:
    """The findings of every capability (or the named one) on a host.toml text, one line each:
    `[warning: ]dotted.key.path: message`."""
    ctx = HostContext(name, host_of(text))
    return [
        f"{'warning: ' if f.severity is Severity.WARNING else ''}{'.'.join(map(str, f.path))}: "
        f"{f.message}"
        for cap in REGISTRY
        if capability is None or cap.name == capability
        for f in cap.findings(ctx)
    ]


def identities_of(text: str, capability: str | None = None, name: str = "a") -> list[Identity]:
    """The fleet-unique values every capability (or the named one) claims for a host.toml text."""
    ctx = HostContext(name, host_of(text))
    return [
        identity
        for cap in REGISTRY
        if capability is None or cap.name == capability
        for identity in cap.identities(ctx)
    ]


def host_program(name: str, module: str | None = None) -> Any:
    """Import a host-side program, `pkgs/<name>/<module>.py` (default: name with _; stdlib only,
    not part of the kvmfleet package: it is installed on the hosts), for its unit tests."""
    import importlib.util
    import sys

    module = module or name.replace("-", "_")
    if module in sys.modules:
        return sys.modules[module]
    path = REPO / "pkgs" / name / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None, path
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded
