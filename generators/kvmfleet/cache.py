"""The unchanged-fleet shortcut: what the last complete run saw and wrote, kept in
`.kvmfleet-cache.json` at the fleet root (untracked, safe to delete).

The key is a digest of the generator's own source, the shape of `hosts/` and the bytes of every
input file. When the key matches and every generated file still has the bytes that run wrote,
validating and rendering again would produce the same result, so `generate`, `generate --check`
and `check` report that result without importing the models. A fresh clone (CI, the flake's
checks) has no cache and always takes the full path. Imports stay light: this runs before
anything heavy is loaded."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmfleet.inventory import (
    GENERATED_FILE,
    HOST_FILE,
    HOST_KEY_FILE,
    HOSTS_DIR,
    SITE_FILE,
    entry_kind,
    scan_hosts,
)
from kvmfleet.output import write_atomic

# secrets/admins.txt (kvmfleet.sopsconfig.ADMINS_FILE; not imported: this module stays light)
ADMINS_FILE = "secrets/admins.txt"

CACHE_FILE = ".kvmfleet-cache.json"
_FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RunState:
    """A complete, clean run: every generated file up to date, nothing left to report but
    warnings."""

    key: str
    hosts: tuple[str, ...]
    outputs: dict[str, str]  # generated file -> sha256 of its bytes
    warnings: tuple[str, ...]


def _generator_digest() -> str:
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def input_key(root: Path) -> str | None:
    """The digest of everything a run's result depends on, or None when `hosts/` holds anything
    the full path must report (a link, an odd directory, an unreadable file)."""
    scan = scan_hosts(root)
    if scan.problems or entry_kind(root / HOSTS_DIR) != "dir":
        return None
    digest = hashlib.sha256(_generator_digest().encode())
    digest.update(json.dumps([scan.hosts, scan.stray]).encode())
    inputs = [f"{HOSTS_DIR}/{SITE_FILE}", *(f"{HOSTS_DIR}/{h}/{HOST_FILE}" for h in scan.hosts)]
    # Optional inputs: each host's public host key and the secrets' admins.
    optional = [ADMINS_FILE, *(f"{HOSTS_DIR}/{h}/{HOST_KEY_FILE}" for h in scan.hosts)]
    for name in inputs + optional:
        path = root / name
        kind = entry_kind(path)
        if kind == "missing" and (name.endswith(SITE_FILE) or name in optional):
            digest.update(b"missing\0" + name.encode() + b"\0")
            continue
        if kind != "file":
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def output_digest(root: Path, path: str) -> str | None:
    try:
        return hashlib.sha256((root / path).read_bytes()).hexdigest()
    except OSError:
        return None


def unchanged(root: Path) -> RunState | None:
    """The last run's state when nothing it depends on changed since, else None."""
    state = _load(root)
    if state is None or input_key(root) != state.key:
        return None
    for path, digest in state.outputs.items():
        if entry_kind(root / path) != "file" or output_digest(root, path) != digest:
            return None
    return state


def record(root: Path, hosts: list[str], warnings: list[str], extra: tuple[str, ...] = ()) -> None:
    """Remember a complete, clean run (call it after generate left every file up to date);
    `extra`: fleet-wide generated files it wrote besides the hosts' (.sops.yaml)."""
    key = input_key(root)
    if key is None:
        return
    outputs: dict[str, str] = {}
    for path in [*(f"{HOSTS_DIR}/{host}/{GENERATED_FILE}" for host in hosts), *extra]:
        digest = output_digest(root, path)
        if digest is None:
            return
        outputs[path] = digest
    doc = {
        "format": _FORMAT,
        "key": key,
        "hosts": hosts,
        "outputs": outputs,
        "warnings": warnings,
    }
    # Only a speed-up: a read-only or full file system just means no shortcut next time.
    with contextlib.suppress(OSError):
        write_atomic(root / CACHE_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def forget(root: Path) -> None:
    with contextlib.suppress(OSError):
        if entry_kind(root / CACHE_FILE) == "file":
            (root / CACHE_FILE).unlink()


def _load(root: Path) -> RunState | None:
    path = root / CACHE_FILE
    if entry_kind(path) != "file":
        return None
    try:
        doc: Any = json.loads(path.read_bytes())
        if doc.get("format") != _FORMAT:
            return None
        return RunState(
            key=str(doc["key"]),
            hosts=tuple(str(h) for h in doc["hosts"]),
            outputs={str(k): str(v) for k, v in doc["outputs"].items()},
            warnings=tuple(str(w) for w in doc["warnings"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
