"""The cache: `.kvmfleet-cache` at the fleet root, a local speed-up only (untracked, safe to
delete). It holds
- per host, its summary (`kvmfleet.summary`) keyed by everything the host's result depends on:
  its host.toml (its bytes, or failing that its parsed data, so a comment changes nothing), the
  site.toml layers it is built from (the top level and its roles' tables), its name, and the
  generator (its own source, Python's and pydantic's versions, the time-zone database);
- site.toml's own findings, keyed by its bytes;
- the last complete, clean run (every input's digest and every generated file's), with which an
  unchanged fleet is answered without loading the models.

Trust: a cache says "these inputs gave these results" and is believed without checking, so it is
used only where nobody else can have written it:
- only in a git work tree, and only when it is a regular file git does not track (a committed
  cache could vouch for an inventory nobody checked);
- only when it carries a valid HMAC under a random key kept in the git directory
  (`<git dir>/kvmfleet-cache.key`, mode 0600, created by the first run): a cache that arrives
  with the files (a commit, a patch, an archive) or was written by hand never verifies;
- never with `--no-cache`, and never when the `CI` environment variable is set (CI validates in
  full).
Anything that fails these checks or is not exactly what this version writes is ignored (and
replaced by the next successful run), never an error. Imports stay light: this runs before
anything heavy."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from kvmfleet.inventory import (
    GENERATED_FILE,
    HOST_FILE,
    HOST_KEY_FILE,
    HOSTS_DIR,
    SITE_FILE,
    HostDirs,
    entry_kind,
    read_bytes,
    scan_hosts,
)
from kvmfleet.output import remove_file, write_atomic
from kvmfleet.problems import Problem

# secrets/admins.txt (kvmfleet.sopsconfig.ADMINS_FILE; not imported: this module stays light)
ADMINS_FILE = "secrets/admins.txt"

CACHE_FILE = ".kvmfleet-cache"
_FORMAT = 3
_PACKAGE = Path(__file__).resolve().parent
# Libraries whose version can change what a run says (pydantic's messages are translated).
_LIBRARIES = ("pydantic", "pydantic_core", "tomlkit")


def in_ci() -> bool:
    """The `CI` environment variable is set (GitHub, GitLab, ... set CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class RunState:
    """A complete, clean run: every generated file up to date, nothing left to report but
    warnings."""

    key: str
    hosts: tuple[str, ...]
    outputs: dict[str, str]  # generated file -> its signature
    warnings: tuple[str, ...]


@dataclass
class Store:
    """The cache as this run found it, and what it will write back."""

    root: Path
    key_file: Path
    # host -> its record (kvmfleet.run._record), kept as the text read: only the records of hosts
    # computed this run are encoded again.
    hosts: dict[str, str] = field(default_factory=dict)
    site: dict[str, Any] | None = None  # {"bytes": digest, "problems": [...]}
    disk: dict[str, str] = field(default_factory=dict)  # host -> its generated file's signature
    fleet: RunState | None = None

    _prepared: _Prepared | None = field(default=None, repr=False)

    def prepare(self, records: dict[str, str]) -> None:
        """Encode and seal ahead the host records `save` will write first (those reused from the
        cache): a run does it while a worker computes the other hosts."""
        with contextlib.suppress(OSError):
            key = _key(self.key_file, create=False)
            if key is not None:
                body = _record_lines(records.items()).encode()
                mac = hmac.new(key, body, hashlib.sha256)
                self._prepared = _Prepared(key, list(records.items()), body, mac)

    def save(self, state: RunState | None) -> None:
        """Write the cache (only a speed-up: a read-only or full file system means no cache)."""
        meta: dict[str, Any] = {
            "generator": generator_digest(),
            "site": self.site,
            "disk": self.disk,
            "fleet": None
            if state is None
            else {
                "key": state.key,
                "hosts": list(state.hosts),
                "outputs": state.outputs,
                "warnings": list(state.warnings),
            },
        }
        with contextlib.suppress(OSError):
            key = _key(self.key_file, create=True)
            if key is None:
                return
            records = list(self.hosts.items())
            prepared = self._prepared
            if prepared is not None and prepared.begins(key, records):
                head, mac = prepared.body, prepared.mac.copy()
                records = records[len(prepared.records) :]
            else:
                head, mac = b"", hmac.new(key, b"", hashlib.sha256)
            tail = (
                _record_lines(records) + json.dumps(meta, separators=(",", ":")) + "\n"
            ).encode()
            mac.update(tail)
            # Not synced: after a crash the seal tells a torn file, which is then not used.
            write_atomic(
                self.root / CACHE_FILE,
                _with_seal(mac, [head, tail]),
                root=self.root,
                durable=False,
            )


@dataclass(frozen=True)
class _Prepared:
    key: bytes
    records: list[tuple[str, str]]
    body: bytes
    mac: hmac.HMAC

    def begins(self, key: bytes, records: list[tuple[str, str]]) -> bool:
        """Whether `records` start with exactly the prepared ones (the same text objects)."""
        if key != self.key or len(records) < len(self.records):
            return False
        return all(
            name == old_name and record is old_record
            for (name, record), (old_name, old_record) in zip(records, self.records, strict=False)
        )


def _record_lines(records: Iterable[tuple[str, str]]) -> str:
    # A host's record is kept as the text it was read as: only hosts computed this run were
    # encoded again.
    return "".join(f"{name}\t{record}\n" for name, record in records if _one_line(name))


def _one_line(text: str) -> bool:
    return "\n" not in text and "\t" not in text


def open_store(
    root: Path, tracked: set[str] | None, *, enabled: bool = True
) -> tuple[Store | None, list[str]]:
    """The cache this run may read and write (None: none at all), and warnings to print.
    `tracked`: what git tracks under `root` (output.tracked_files; None: git cannot tell)."""
    if not enabled:
        return None, []
    git_dir = find_git_dir(root)
    if git_dir is None:
        return None, []  # no place for the key: no cache
    path = root / CACHE_FILE
    store = Store(root, git_dir / KEY_FILE)
    kind = entry_kind(path)
    if kind == "missing":
        return store, []
    if kind != "file":
        return None, [f"warning: {CACHE_FILE}: not a regular file; the cache is not used"]
    if tracked is None:
        return None, []  # git cannot say whether it tracks the file: do not trust it
    if CACHE_FILE in tracked:
        return None, [
            f"warning: {CACHE_FILE}: tracked by git, so it is never trusted (a committed cache "
            f"could vouch for an inventory nobody checked): git rm --cached {CACHE_FILE}"
        ]
    try:
        key = _key(store.key_file, create=False)
        body = _opened(key, path.read_bytes()) if key is not None else None
        if body is None:
            return store, []
        *records, meta_line, end = body.decode("utf-8").split("\n")
        meta: Any = json.loads(meta_line)
        if meta.get("generator") != generator_digest() or end != "":
            return store, []
        site, disk, fleet = meta["site"], meta["disk"], meta["fleet"]
        if not isinstance(site, dict | None):
            return store, []
        for line in records:
            name, tab, record = line.partition("\t")
            if not tab:
                return Store(root, store.key_file), []
            store.hosts[name] = record
        store.disk = {_text(k): _text(v) for k, v in disk.items()}
        store.site = site
        if fleet is not None:
            store.fleet = RunState(
                key=_text(fleet["key"]),
                hosts=tuple(_text(h) for h in fleet["hosts"]),
                outputs={_text(k): _text(v) for k, v in fleet["outputs"].items()},
                warnings=tuple(_text(w) for w in fleet["warnings"]),
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Store(root, store.key_file), []
    return store, []


KEY_FILE = "kvmfleet-cache.key"
# The file: this line with the HMAC of the rest, one line per host (its name, a tab, and its
# record: kvmfleet.run), then a line of JSON (the site's findings, the generated files'
# signatures, the last clean run). A line per host lets a run read only the records it needs and
# write back the others as they were; the fleet's line comes last, so that the records reused
# can be sealed ahead (`Store.prepare`).
_MAGIC = f"kvmfleet-cache {_FORMAT} hmac-sha256 "


def _sealed(key: bytes, body: str) -> bytes:
    """The cache file: its body under a first line holding the body's HMAC."""
    data = body.encode()
    return _with_seal(hmac.new(key, data, hashlib.sha256), [data])


def _with_seal(mac: hmac.HMAC, body: list[bytes]) -> bytes:
    """The cache file of `body`'s parts, whose HMAC `mac` holds."""
    return b"".join([f"{_MAGIC}{mac.hexdigest()}\n".encode(), *body])


def _opened(key: bytes, data: bytes) -> bytes | None:
    """The body of a sealed cache file whose HMAC is valid, else None."""
    magic = _MAGIC.encode()
    head = len(magic) + 64
    if not data.startswith(magic) or data[head : head + 1] != b"\n":
        return None
    body = data[head + 1 :]
    mac = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    return body if hmac.compare_digest(mac, data[len(magic) : head]) else None


def _key(path: Path, *, create: bool) -> bytes | None:
    """The secret the cache is sealed with (made on first use, readable by its owner only)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        if not create:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # another run made it just now
            return _key(path, create=False)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        return _key(path, create=False)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        key = handle.read(128).strip()
    return key if len(key) == 64 else None


def find_git_dir(root: Path) -> Path | None:
    """The git directory of the work tree `root` lies in (a `.git` directory, or the one a
    `.git` file points to), else None."""
    try:
        here = root.resolve()
    except OSError:
        return None
    for directory in (here, *here.parents):
        dot_git = directory / ".git"
        kind = entry_kind(dot_git)
        if kind == "dir":
            return dot_git
        if kind not in ("missing", "file"):
            return None  # a linked or odd .git: no key is written through it
        if kind == "file":
            try:
                text = dot_git.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None
            if not text.startswith("gitdir: "):
                return None
            target = (directory / text.removeprefix("gitdir: ")).resolve()
            return target if entry_kind(target) == "dir" else None
    return None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


@cache
def generator_digest() -> str:
    """What, besides the inventory, a run's result depends on."""
    digest = hashlib.sha256(sys.version.encode() + b"\0")
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    digest.update(json.dumps(_library_versions()).encode())
    # Which time zones exist is the system's tz database (a package upgrade changes the
    # directories' modification times).
    for directory in zoneinfo.TZPATH:
        with contextlib.suppress(OSError):
            digest.update(f"{directory}:{Path(directory).stat().st_mtime_ns}".encode())
    return digest.hexdigest()


def _library_versions() -> list[str]:
    """The installed distributions of the libraries, by their metadata directories' names
    (importlib.metadata would cost more than the rest of an unchanged run)."""
    out = []
    for name in _LIBRARIES:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            out.append(f"{name}: none")
            continue
        site = Path(spec.origin).parent.parent
        try:
            out += sorted(
                p.name
                for p in site.iterdir()
                if p.name.startswith(f"{name}-") and p.name.endswith(".dist-info")
            )
        except OSError:
            out.append(f"{name}: {spec.origin}")
    return out


@dataclass(frozen=True)
class Inputs:
    """Every input file of a run, read once: what the shortcut, the run and the cache share."""

    scan: HostDirs
    site: bytes | None  # None: no site.toml (or not a readable regular file)
    hosts: dict[str, bytes]  # host -> its host.toml, for the hosts that could be read
    problems: tuple[Problem, ...]  # host.toml files that could not be read
    key: str | None  # digest of all of it; None when `hosts/` holds anything to report
    # host -> what its optional public host key file is ("missing", a digest, or its odd kind)
    host_keys: dict[str, str] = field(default_factory=dict)


def read_inputs(root: Path) -> Inputs:
    scan = scan_hosts(root)
    clean = not scan.problems and entry_kind(root / HOSTS_DIR) == "dir"
    digest = hashlib.sha256(generator_digest().encode())
    digest.update(json.dumps([scan.hosts, scan.stray]).encode())
    site_name = f"{HOSTS_DIR}/{SITE_FILE}"
    site_kind = entry_kind(root / site_name)
    site = None
    if site_kind == "missing":
        digest.update(b"no site.toml\0")
    elif site_kind == "file":
        try:
            site = (root / site_name).read_bytes()
            digest.update(site_name.encode() + b"\0" + hashlib.sha256(site).digest())
        except OSError:
            clean = False
    else:
        clean = False
    hosts: dict[str, bytes] = {}
    problems: list[Problem] = []
    base = os.fspath(root)  # plain strings: a thousand hosts
    for host in scan.hosts:
        name = f"{HOSTS_DIR}/{host}/{HOST_FILE}"
        try:
            hosts[host] = data = read_bytes(f"{base}/{name}")
        except OSError as exc:
            problems.append(Problem(name, (), f"cannot read: {exc.strerror or exc}"))
            clean = False
            continue
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    # Optional inputs: each host's public host key and the secrets' admins.
    host_keys = {
        host: _optional(f"{base}/{HOSTS_DIR}/{host}/{HOST_KEY_FILE}") for host in scan.hosts
    }
    for host, token in host_keys.items():
        digest.update(f"{HOSTS_DIR}/{host}/{HOST_KEY_FILE}\0{token}\0".encode())
    admins = _optional(root / ADMINS_FILE)
    digest.update(f"{ADMINS_FILE}\0{admins}\0".encode())
    if any(t.startswith("kind:") for t in [admins, *host_keys.values()]):
        clean = False  # a link or an unreadable file: the full path reports it
    key = digest.hexdigest() if clean else None
    return Inputs(scan, site, hosts, tuple(problems), key, host_keys)


def _optional(path: str | Path) -> str:
    """What an optional input is: "missing", the digest of its bytes, or "kind:<kind>"."""
    kind = entry_kind(path)
    if kind == "missing":
        return "missing"
    if kind != "file":
        return f"kind:{kind}"
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except OSError:
        return "kind:unreadable"


def input_key(root: Path) -> str | None:
    """The digest of every input of a run, or None when `hosts/` holds anything the full path
    must report (a link, an odd directory, an unreadable file)."""
    return read_inputs(root).key


def signature(path: str | Path) -> str | None:
    """A regular file's identity and last change (its ctime moves with any write, and no program
    can set it back): equal signatures mean the same bytes, without reading them."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def generated_path(host: str) -> str:
    return f"{HOSTS_DIR}/{host}/{GENERATED_FILE}"


def unchanged(store: Store | None, inputs: Inputs) -> RunState | None:
    """The last run's state when nothing it depends on changed since, else None."""
    if store is None or store.fleet is None:
        return None
    state = store.fleet
    if inputs.key is None or inputs.key != state.key:
        return None
    root = os.fspath(store.root)  # plain strings: a thousand paths
    for path, recorded in state.outputs.items():
        if signature(f"{root}/{path}") != recorded:
            return None
    return state


def fleet_state(
    store: Store, inputs: Inputs, hosts: list[str], warnings: list[str], extra: tuple[str, ...] = ()
) -> RunState | None:
    """The state of a complete, clean run that just left every generated file up to date; records
    the generated files' signatures. `extra`: fleet-wide generated files besides the hosts'
    (.sops.yaml)."""
    if inputs.key is None:
        return None
    outputs: dict[str, str] = {}
    root = os.fspath(store.root)
    for path in [*(generated_path(host) for host in hosts), *extra]:
        sig = signature(f"{root}/{path}")
        if sig is None:
            return None
        outputs[path] = sig
    for host in hosts:
        store.disk[host] = outputs[generated_path(host)]
    return RunState(inputs.key, tuple(hosts), outputs, tuple(warnings))


def forget(root: Path) -> None:
    with contextlib.suppress(OSError):
        if entry_kind(root / CACHE_FILE) == "file":
            remove_file(root, root / CACHE_FILE)
