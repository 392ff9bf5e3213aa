"""Read the inventory's TOML files and layer them per host, remembering where every value came from.

Layers, first to last (a later layer wins): the top-level tables of `hosts/site.toml`, then
`[roles.<role>]` of site.toml for each of the host's roles in the host's order, then
`hosts/<name>/host.toml`. Tables merge key by key; a scalar or an array replaces the earlier value.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kvmfleet.problems import InventoryError, KeyPath, Problem, Severity, quote

HOSTS_DIR = "hosts"
SITE_FILE = "site.toml"
HOST_FILE = "host.toml"
GENERATED_FILE = "generated.nix"
HARDWARE_FILE = "hardware.nix"
# The host's public SSH host key (its /etc/ssh/ssh_host_ed25519_key.pub): the host decrypts its
# secrets with the private half (docs/secrets.md). Optional; without it no secret is provisioned.
HOST_KEY_FILE = "ssh_host_ed25519_key.pub"

# Inventories are a few levels deep; a limit keeps every later stage safely recursive.
MAX_DEPTH = 32

# RFC 1123 label, lower case: NixOS rejects dots in networking.hostName, DNS wants <= 63.
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")

Table = dict[str, Any]


@dataclass(frozen=True)
class Layer:
    """Where a value came from: the file, and for site roles the role table."""

    file: str
    role: str | None = None

    def __str__(self) -> str:
        return f"{self.file} [roles.{self.role}]" if self.role else self.file


@dataclass(frozen=True)
class HostInventory:
    """One host's merged inventory and the layer each key path came from."""

    name: str
    file: str
    data: Table
    origins: Mapping[KeyPath, Layer]
    layers: tuple[Layer, ...]
    # The line of hosts/<name>/ssh_host_ed25519_key.pub, when there is one.
    host_key: str | None = None

    def origin(self, path: KeyPath) -> Layer:
        """The layer that set `path`, or the nearest enclosing key that was set (the host file if none)."""
        for end in range(len(path), 0, -1):
            layer = self.origins.get(path[:end])
            if layer is not None:
                return layer
        return Layer(self.file)


@dataclass(frozen=True)
class Inventory:
    root: Path
    site: Table
    site_file: str
    hosts: tuple[HostInventory, ...]
    # Host directories without host.toml (e.g. a removed host whose generated.nix is left over).
    stray_dirs: tuple[str, ...] = field(default=())
    # Files that could not be read or parsed; the hosts they belong to are missing from `hosts`.
    problems: tuple[Problem, ...] = field(default=())


def relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_toml(root: Path, path: Path) -> Table:
    """Parse one TOML file; a syntax error names the file, line and column.

    The bytes are decoded as strict UTF-8 with no newline translation: a lone CR inside a line is
    the TOML parser's to reject, never silently turned into a line break that `cat` would hide."""
    name = relative(root, path)
    kind = entry_kind(path)
    if kind == "link":
        raise InventoryError([Problem(name, (), LINK_MESSAGE)])
    if kind != "file":
        raise InventoryError([Problem(name, (), NOT_A_FILE_MESSAGE)])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError([Problem(name, (), f"cannot read: {exc.strerror or exc}")]) from None
    return parse_toml(name, raw)


def parse_toml(name: str, raw: bytes) -> Table:
    """`read_toml` on bytes already read (`name`: the file, for messages)."""
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InventoryError(
            [Problem(name, (), f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(
            [Problem(name, (), f"TOML syntax error: {_toml_message(exc, text)}")]
        ) from None
    except RecursionError:
        raise InventoryError(
            [Problem(name, (), f"nested deeper than {MAX_DEPTH} levels")]
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise InventoryError([Problem(name, (), f"nested deeper than {MAX_DEPTH} levels")])
    return data


def read_host_key(root: Path, path: Path) -> str:
    """The one `ssh-ed25519 <base64> [comment]` line of a host's public host key file; the
    message of a bad file never repeats its content (it may be the private key)."""
    from kvmfleet.agekey import KeyConversionError, ssh_to_age

    name = relative(root, path)
    kind = entry_kind(path)
    if kind != "file":
        message = LINK_MESSAGE if kind == "link" else NOT_A_FILE_MESSAGE
        raise InventoryError([Problem(name, (), message)])
    try:
        text = path.read_bytes().decode("utf-8", errors="strict")
    except OSError as exc:
        raise InventoryError([Problem(name, (), f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise InventoryError([Problem(name, (), "not UTF-8 text")]) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    expected = (
        'expected the host\'s public key, one line "ssh-ed25519 AAAA... [comment]" '
        "(its /etc/ssh/ssh_host_ed25519_key.pub)"
    )
    if "PRIVATE KEY" in text:
        raise InventoryError(
            [Problem(name, (), f"holds a private key (not shown): never commit it; {expected}")]
        )
    if len(lines) != 1:
        raise InventoryError([Problem(name, (), f"has {len(lines)} lines; {expected}")])
    try:
        ssh_to_age(lines[0])
    except KeyConversionError as exc:
        raise InventoryError([Problem(name, (), f"{exc}; {expected}")]) from None
    return lines[0]


LINK_MESSAGE = (
    "is a symbolic link: kvmfleet never reads or writes through links in the inventory "
    "(make it a real file or directory)"
)


NOT_A_FILE_MESSAGE = "is not a regular file (a directory, a FIFO, a device?)"


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes. Takes a plain string: building a Path costs more than reading a small
    file, and a run reads thousands."""
    with open(path, "rb") as handle:  # noqa: PTH123 - see above
        return handle.read()


def entry_kind(path: str | Path) -> str:
    """ "missing", "link", "file" (regular), "dir", "other" or "unreadable" (its directory cannot
    be searched); never follows a link, never opens."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode):
        return "file"
    return "dir" if stat.S_ISDIR(mode) else "other"


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest (iteratively: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            else:  # a value: as deep as its table, plus one (no need to visit it)
                deepest = max(deepest, depth + 1)
    return deepest


def _toml_message(exc: tomllib.TOMLDecodeError, text: str) -> str:
    # tomllib says "... (at line 3, column 5)"; turn that into "line 3, column 5: ...".
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        return f"line {match[1]}, column {match[2]}: {message[: match.start()]}"
    match = re.search(r"\s*\(at end of document\)$", message)
    if match:
        return f"line {text.count(chr(10)) + 1}: {message[: match.start()]} (at end of file)"
    return message


def merge_into(
    target: Table, origins: dict[KeyPath, Layer], layer: Table, source: Layer, prefix: KeyPath = ()
) -> None:
    """Layer `layer` over `target` in place, recording the source of every key it sets."""
    for key, value in layer.items():
        path = (*prefix, key)
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            origins.setdefault(path, source)
            merge_into(current, origins, value, source, path)
            continue
        if key in target:  # a replaced value forgets where its old children came from
            for stale in [p for p in origins if p[: len(path)] == path]:
                del origins[stale]
        target[key] = _copy_recording(value, origins, source, path)


def _copy_recording(value: Any, origins: dict[KeyPath, Layer], source: Layer, path: KeyPath) -> Any:
    """A copy of `value`, recording `source` as the origin of it and of everything in it (one
    walk for both: it runs over every value of every host's layers)."""
    origins[path] = source
    if isinstance(value, dict):
        return {k: _copy_recording(v, origins, source, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_recording(v, origins, source, (*path, i)) for i, v in enumerate(value)]
    return value


def host_roles(host: Table, site: Table) -> list[str]:
    """The roles that select site layers: the host's own list, else the site's default list."""
    for table in (host, site):
        section = table.get("host")
        if isinstance(section, dict) and "roles" in section:
            roles = section["roles"]
            if isinstance(roles, list):
                return [r for r in roles if isinstance(r, str)]
            return []
    return []


def layer_host(
    name: str, host_file: str, host: Table, site_file: str, site: Table
) -> HostInventory:
    data: Table = {}
    origins: dict[KeyPath, Layer] = {}
    layers: list[Layer] = []
    site_defaults = {k: v for k, v in site.items() if k != "roles"}
    if site_defaults:
        merge_into(data, origins, site_defaults, Layer(site_file))
        layers.append(Layer(site_file))
    site_roles = site.get("roles")
    for role in host_roles(host, site):
        table = site_roles.get(role) if isinstance(site_roles, dict) else None
        if isinstance(table, dict):
            merge_into(data, origins, table, Layer(site_file, role))
            layers.append(Layer(site_file, role))
    merge_into(data, origins, host, Layer(host_file))
    layers.append(Layer(host_file))
    return HostInventory(name, host_file, data, origins, tuple(layers))


@dataclass(frozen=True)
class HostDirs:
    """What `hosts/` holds: host directories, leftovers of removed hosts, and problems."""

    hosts: tuple[str, ...]
    # Directories without host.toml that hold a generated.nix (a removed host's leftover).
    stray: tuple[str, ...]
    problems: tuple[Problem, ...]


INVALID_HOST_NAME = (
    "is not a valid host name (the directory name is the host name: lower-case letters, digits "
    "and '-', 1 to 63 characters, not starting or ending with '-')"
)


def scan_hosts(root: Path) -> HostDirs:
    """Sort the entries of `hosts/` by the one rule the flake applies too (lib/host-names.nix):
    a host is a real directory with a valid host name holding a regular `host.toml`. Every other
    directory is reported (a warning, or an error where the host was clearly meant), never
    skipped in silence; links are refused, never followed."""
    hosts_dir = root / HOSTS_DIR
    hosts: list[str] = []
    stray: list[str] = []
    problems: list[Problem] = []
    try:
        names = sorted(os.listdir(hosts_dir))  # noqa: PTH208 - names only, no Path per entry
    except OSError as exc:
        return HostDirs((), (), (Problem(HOSTS_DIR, (), f"cannot list: {exc.strerror or exc}"),))
    base = os.fspath(hosts_dir)  # plain strings: a fleet has thousands of these paths
    for name in names:
        kind = entry_kind(f"{base}/{name}")
        if kind == "link":
            entry = hosts_dir / name
            if name != SITE_FILE and (entry.is_dir() or not entry.exists()):
                problems.append(Problem(relative(root, entry), (), LINK_MESSAGE))
            continue  # a linked site.toml is reported when it is read
        if kind != "dir":
            continue
        host_kind = entry_kind(f"{base}/{name}/{HOST_FILE}")
        if host_kind == "file" and HOST_NAME.match(name):
            hosts.append(name)
            continue
        problem = _not_a_host_problem(root, hosts_dir / name, host_kind)
        if problem is None:
            stray.append(name)
        else:
            problems.append(problem)
    return HostDirs(tuple(hosts), tuple(stray), tuple(problems))


def _not_a_host_problem(root: Path, entry: Path, host_kind: str) -> Problem | None:
    """What is wrong with a directory of hosts/ that is not a host (None: a host removed from the
    inventory that left its generated file, an orphan)."""
    rel = relative(root, entry)
    if not HOST_NAME.match(entry.name):
        if host_kind != "missing" and not entry.name.startswith((".", "_")):
            return Problem(rel, (), f"{quote(entry.name)} {INVALID_HOST_NAME}")
        return Problem(
            rel,
            (),
            f"not a host directory: {quote(entry.name)} {INVALID_HOST_NAME}; ignored",
            Severity.WARNING,
        )
    if host_kind == "missing":
        if entry_kind(entry / GENERATED_FILE) != "missing":
            return None
        return Problem(rel, (), _not_a_host(entry), Severity.WARNING)
    if host_kind == "unreadable":
        return Problem(rel, (), "cannot be read (permission denied?)")
    if host_kind == "link":
        return Problem(f"{rel}/{HOST_FILE}", (), LINK_MESSAGE)
    return Problem(f"{rel}/{HOST_FILE}", (), NOT_A_FILE_MESSAGE)


def _not_a_host(directory: Path) -> str:
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        return f"not a host directory (cannot list: {exc.strerror or exc}); ignored"
    near = [n for n in names if n.lower() in {HOST_FILE, "hosts.toml", "host.tml"}]
    if near:
        return f"not a host directory: no {HOST_FILE} (found {quote(near[0])}: did you mean {HOST_FILE}?); ignored"
    return f"not a host directory: no {HOST_FILE}; ignored"


def load(root: Path, only: list[str] | None = None, *, partial: bool = False) -> Inventory:
    """Read `hosts/site.toml` and every `hosts/<name>/host.toml` under `root` (or only the named hosts).

    Raises InventoryError with every syntax or naming problem found across all files, unless
    `partial`: then the problems are returned with the hosts that could be read. Warnings (a
    directory that is not a host) are returned in `problems` too."""
    hosts_dir = root / HOSTS_DIR
    hosts_kind = entry_kind(hosts_dir)
    if hosts_kind == "link":
        raise InventoryError([Problem(HOSTS_DIR, (), LINK_MESSAGE)])
    if hosts_kind != "dir":
        raise InventoryError(
            [Problem(HOSTS_DIR, (), "no such directory (is --root the fleet's flake directory?)")]
        )
    problems: list[Problem] = []
    site_path = hosts_dir / SITE_FILE
    site_file = relative(root, site_path)
    site: Table = {}
    if entry_kind(site_path) != "missing":
        try:
            site = read_toml(root, site_path)
        except InventoryError as exc:
            problems.extend(exc.problems)
    scan = scan_hosts(root)
    problems.extend(scan.problems)
    hosts: list[HostInventory] = []
    for name in scan.hosts:
        if only is not None and name not in only:
            continue
        host_path = hosts_dir / name / HOST_FILE
        try:
            table = read_toml(root, host_path)
        except InventoryError as exc:
            problems.extend(exc.problems)
            continue
        inv = layer_host(name, relative(root, host_path), table, site_file, site)
        key_path = hosts_dir / name / HOST_KEY_FILE
        if entry_kind(key_path) != "missing":
            try:
                inv = replace(inv, host_key=read_host_key(root, key_path))
            except InventoryError as exc:
                problems.extend(exc.problems)
                continue
        hosts.append(inv)
    if only is not None:
        known = {h.name for h in hosts} | {
            p.file.split("/")[1]
            for p in problems
            if p.file.count("/") >= 1 and p.severity is Severity.ERROR
        }
        for name in only:
            if name not in known:
                problems.append(
                    Problem(
                        f"{HOSTS_DIR}/{name}",
                        (),
                        f"no such host (expected {HOSTS_DIR}/{name}/{HOST_FILE})",
                    )
                )
    if not partial and any(p.severity is Severity.ERROR for p in problems):
        raise InventoryError(problems)
    return Inventory(root, site, site_file, tuple(hosts), scan.stray, tuple(problems))
