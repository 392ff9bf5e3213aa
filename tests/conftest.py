"""Shared test helpers: running the CLI in-process, evaluating Nix with the real interpreter."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kvmfleet.cli import main

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
    """A copy of the repo's demo fleet (hosts/ with its committed generated files)."""
    return copy_fleet(REPO / "hosts", tmp_path / "fleet" / "hosts").parent


def host_program(name: str) -> Any:
    """Import a host-side program, `pkgs/<name>/<name with _>.py` (stdlib only, not part of the
    kvmfleet package: it is installed on the hosts), for its unit tests."""
    import importlib.util
    import sys

    module = name.replace("-", "_")
    if module in sys.modules:
        return sys.modules[module]
    path = REPO / "pkgs" / name / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None, path
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded
