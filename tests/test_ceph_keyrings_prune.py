"""modules/ceph-keyrings-prune.sh, run at every activation: the keyrings that
ceph-keyring-<id>.service installed for clients no longer configured leave /etc/ceph; keyrings
without the module's marker (put there by hand) and those of configured clients stay."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "modules" / "ceph-keyrings-prune.sh"


def prune(tmp: Path, *configured: str) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("sh")
    assert shell is not None
    env = {**os.environ, "KEYRINGS": str(tmp / "etc"), "MARKERS": str(tmp / "markers")}
    return subprocess.run(
        [shell, str(SCRIPT), *configured], capture_output=True, text=True, env=env, check=False
    )


def installed(tmp: Path, client: str, marker: bool = True) -> Path:
    keyring = tmp / "etc" / f"ceph.client.{client}.keyring"
    keyring.parent.mkdir(parents=True, exist_ok=True)
    keyring.write_text(f"[client.{client}]\n\tkey = AQ...\n")
    if marker:
        (tmp / "markers").mkdir(exist_ok=True)
        (tmp / "markers" / client).touch()
    return keyring


def test_a_client_no_longer_configured_loses_its_keyring(tmp_path: Path) -> None:
    kept = installed(tmp_path, "cloudstack")
    gone = installed(tmp_path, "old.client")
    by_hand = installed(tmp_path, "admin", marker=False)
    done = prune(tmp_path, "cloudstack")
    assert done.returncode == 0, done.stderr
    assert kept.exists() and by_hand.exists()
    assert not gone.exists()
    assert not (tmp_path / "markers" / "old.client").exists()
    assert (tmp_path / "markers" / "cloudstack").exists()
    assert "client.old.client is no longer configured" in done.stdout
    # the secret itself is never printed
    assert "AQ" not in done.stdout + done.stderr
    # again: nothing left to do
    assert prune(tmp_path, "cloudstack").stdout == ""


@pytest.mark.parametrize("configured", [(), ("other",)])
def test_with_no_client_configured_every_installed_keyring_goes(
    tmp_path: Path, configured: tuple[str, ...]
) -> None:
    gone = installed(tmp_path, "cloudstack")
    by_hand = installed(tmp_path, "admin", marker=False)
    assert prune(tmp_path, *configured).returncode == 0
    assert not gone.exists() and by_hand.exists()


def test_without_markers_nothing_happens(tmp_path: Path) -> None:
    by_hand = installed(tmp_path, "admin", marker=False)
    done = prune(tmp_path)
    assert done.returncode == 0 and done.stdout == ""
    assert by_hand.exists()
