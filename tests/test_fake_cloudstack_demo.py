"""`./dev fake-cloudstack`: the fake management server with the demo fleet, and the commands a
newcomer tries against it (status, add --dry-run, add, rolling-upgrade)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from fake_cloudstack import FakeCloudStack
from fake_cloudstack_demo import DemoError, start

SCRIPT = REPO / "tests" / "fake_cloudstack_demo.py"


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return h.hexdigest()


def test_the_demo_fleet_against_the_fake(tmp_path: Path) -> None:
    before = _digest(REPO / "hosts")
    with FakeCloudStack("", "") as fake:
        demo = start(fake, REPO, tmp_path)
        site = (demo.root / "hosts" / "site.toml").read_text()
        assert f'url = "{fake.url}"' in site
        assert f'api_key_file = "{demo.root / "api.key"}"' in site
        assert (demo.root / "secret.key").stat().st_mode & 0o077 == 0
        assert demo.registered == ["kvm01"] and demo.unregistered == ["kvm02"]
        assert demo.cluster == "nixos-cluster"
        status = run_cli("cloudstack", "status", root=demo.root)
        assert status.code == 1  # kvm02 is not registered yet: a finding
        assert status.out.splitlines()[1] == "kvm02: not registered"
        assert status.out.startswith("kvm01: Up, Enabled, agent 4.22.0.0")
        dry = run_cli("cloudstack", "add", "kvm02", "--dry-run", root=demo.root)
        assert dry.code == 0 and dry.out.startswith("addHost "), dry.err
        assert not any(p["command"] == "addHost" for p in fake.requests)
        assert run_cli("cloudstack", "add", "kvm02", root=demo.root).code == 0
        # The instructions' deploy command, run as kvmfleet runs it.
        [upgrade] = [
            line for line in demo.instructions().splitlines() if "--deploy-command" in line
        ]
        deploy = re.search(r"--deploy-command '([^']*)'", upgrade)
        assert deploy is not None
        done = run_cli(
            "cloudstack",
            "rolling-upgrade",
            "--cluster",
            "nixos-cluster",
            "--poll",
            "0",
            "--deploy-command",
            deploy.group(1),
            root=demo.root,
        )
        assert done.code == 0, done.err
        assert {h.version for h in fake.hosts.values()} == {"4.22.1.1"}
    assert _digest(REPO / "hosts") == before


def test_a_fleet_without_the_api_table_is_one_line(tmp_path: Path) -> None:
    fleet = tmp_path / "src"
    (fleet / "hosts").mkdir(parents=True)
    (fleet / "hosts" / "site.toml").write_text('[host]\ntimezone = "UTC"\n')
    with FakeCloudStack("", "") as fake, pytest.raises(DemoError) as info:
        start(fake, fleet, tmp_path / "work")
    assert str(info.value) == (
        f"{fleet / 'hosts' / 'site.toml'}: no [roles.hypervisor.cloudstack.api] table to point at "
        "the fake"
    )


def test_dev_entry_point_serves_until_interrupted(tmp_path: Path) -> None:
    """What `./dev fake-cloudstack` runs: it prints how to point the commands at the server,
    answers them, and stops (removing its copy of the fleet) on Ctrl-C."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in stdout))
    reader.start()
    deadline = time.monotonic() + 60
    root = Path("/nonexistent")
    try:
        while "Ctrl-C stops the server." not in lines:
            assert process.poll() is None, f"exited early: {lines}"
            assert time.monotonic() < deadline, lines
            time.sleep(0.2)
        root = Path(re.sub(r"^the demo fleet, pointed at it: (\S+) .*$", r"\1", lines[1]))
        assert (root / "hosts" / "site.toml").is_file()
        status = run_cli("cloudstack", "status", root=root)
        assert status.out.startswith("kvm01: Up, Enabled"), status.err
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        reader.join(timeout=10)
    assert code == 0
    assert not root.exists()
