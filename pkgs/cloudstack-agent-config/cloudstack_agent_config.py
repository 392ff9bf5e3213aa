#!/usr/bin/env python3
"""The CloudStack agent's mutable configuration on NixOS.

`agent.properties` is shared by three writers: the NixOS configuration (what the host declares),
the management server (Add Host runs `cloudstack-setup-agent`, `keystore-setup` adds the keystore
passphrase) and the agent itself (ids, management server list, local storage). Subcommands:

  merge    put the declared keys into agent.properties; every other line stays as it is
  setup    `cloudstack-setup-agent` as the management server calls it on Add Host
  service  `service <unit> <action>`, which the management server runs over SSH

The declaration is a JSON file: {"set": {key: value}, "seed": {key: value}}. A "set" key always
gets the declared value. A "seed" key (the management server list, which the management server
rewrites) gets it when the key is missing, on the first merge, and when the declared value changed since the
last merge (remembered in a state file next to agent.properties); otherwise the file's value stays.

Exit status: 0 on success; 1 when a file cannot be read or written, or the declaration is invalid
(one line naming the file, nothing half-written: agent.properties and the state file are replaced
atomically); 2 on a usage error. `service` passes systemctl's exit status on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Runner = Callable[[Sequence[str]], int]

DEFAULT_PROPERTIES = Path("/etc/cloudstack/agent/agent.properties")
DEFAULT_DECLARED = Path("/etc/cloudstack/agent-declared.json")
STATE_NAME = ".agent.properties.seeded.json"


class ConfigError(Exception):
    """A problem to report in one line (exit 1), not a traceback."""


# ---------------------------------------------------------------- Java properties format


def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) physical line index of every logical line (a value continues on the next
    line after an odd number of trailing backslashes; comments never continue)."""
    lines = text.split("\n")
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        start = i
        stripped = lines[i].lstrip(" \t\f")
        if stripped and stripped[0] not in "#!":
            while i < len(lines) - 1 and _continues(lines[i]):
                i += 1
        spans.append((start, i))
        i += 1
    return spans


def _continues(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _continues_at_end(lines: list[str]) -> bool:
    """Whether the last logical line is left open by a continuation backslash."""
    if not lines:
        return False
    first, last = _logical_lines("\n".join(lines))[-1]
    stripped = lines[first].lstrip(" \t\f")
    return bool(stripped) and stripped[0] not in "#!" and _continues(lines[last])


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\" or i + 1 == len(raw):
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt == "u" and i + 6 <= len(raw):
            try:
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            except ValueError:
                pass
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    # Java joins \uD8xx\uDCxx pairs; so do we.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def _split_entry(logical: str) -> tuple[str, str] | None:
    """Key and value (both unescaped) of one logical line, or None for a blank/comment line.
    As java.util.Properties: the key ends at the first unescaped "=", ":" or whitespace; then
    whitespace, at most one "=" or ":", and whitespace again separate it from the value."""
    text = logical.lstrip(" \t\f")
    if not text or text[0] in "#!":
        return None
    i = 0
    while i < len(text) and text[i] not in "=: \t\f":
        i += 2 if text[i] == "\\" else 1
    key = text[: min(i, len(text))]
    j = i
    while j < len(text) and text[j] in " \t\f":
        j += 1
    if j < len(text) and text[j] in "=:":
        j += 1
    while j < len(text) and text[j] in " \t\f":
        j += 1
    return _unescape(key), _unescape(text[j:])


def _join_continuation(physical: list[str]) -> str:
    """One logical line from its physical lines (the trailing backslash and the next line's
    leading whitespace go away, as Java reads it)."""
    parts = [physical[0]]
    for line in physical[1:]:
        parts[-1] = parts[-1][:-1]
        parts.append(line.lstrip(" \t\f"))
    return "".join(parts)


def escape(text: str, *, key: bool = False) -> str:
    """Java properties escaping. Properties.load reads ISO-8859-1, so everything outside
    printable ASCII becomes \\uXXXX (UTF-16 code units, as Java writes them)."""
    out: list[str] = []
    for index, ch in enumerate(text):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch == " " and (key or index == 0):
            out.append("\\ ")
        elif ch in "=:#!" and (key or index == 0):
            out.append("\\" + ch)
        elif code < 0x20 or code > 0x7E:
            units = ch.encode("utf-16-be", "surrogatepass")
            for j in range(0, len(units), 2):
                out.append(f"\\u{int.from_bytes(units[j : j + 2], 'big'):04x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Properties:
    """A properties file as its physical lines, with the keys found in them."""

    lines: list[str]
    trailing_newline: bool = True
    # key -> [(first, last) physical line spans], in file order
    entries: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Properties:
        trailing = text.endswith("\n") or text == ""
        body = text[:-1] if text.endswith("\n") else text
        lines = body.split("\n") if body else []
        props = cls(lines, trailing)
        for first, last in _logical_lines(body) if body else []:
            entry = _split_entry(_join_continuation(lines[first : last + 1]))
            if entry is None:
                continue
            key, value = entry
            props.entries.setdefault(key, []).append((first, last))
            props.values[key] = value  # Java: the last occurrence wins
        return props

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def render(self) -> str:
        text = "\n".join(self.lines)
        return text + "\n" if self.trailing_newline and self.lines else text

    def update(self, changes: Mapping[str, str]) -> bool:
        """Set keys: an existing key's first line is replaced (its later duplicates dropped),
        a new key is appended. Returns whether anything changed."""
        changed = {k: v for k, v in changes.items() if self.values.get(k) != v}
        if not changed:
            return False
        replace: dict[int, str] = {}
        drop: set[int] = set()
        for key, value in changed.items():
            spans = self.entries.get(key)
            if not spans:
                continue
            first, last = spans[0]
            replace[first] = f"{escape(key, key=True)}={escape(value)}"
            drop.update(range(first + 1, last + 1))
            for f, la in spans[1:]:
                drop.update(range(f, la + 1))
        lines = [replace.get(i, line) for i, line in enumerate(self.lines) if i not in drop]
        if _continues_at_end(lines):
            # Java drops a backslash that ends the file; an empty line ends that logical line the
            # same way, so a key appended after it stays a key of its own (java.util.Properties
            # LineReader: a line break right after a continuation ends the line)
            lines.append("")
        lines += [
            f"{escape(k, key=True)}={escape(v)}"
            for k, v in changed.items()
            if k not in self.entries
        ]
        fresh = Properties.parse("\n".join(lines) + "\n")
        fresh.trailing_newline = True
        self.lines, self.entries, self.values = fresh.lines, fresh.entries, fresh.values
        self.trailing_newline = True
        return True


# ---------------------------------------------------------------- files


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write next to the real file (through symlinks), fsync, rename over it, fsync the directory.
    An existing file keeps its mode. A directory that is missing or not writable is a
    ConfigError naming the file."""
    try:
        _atomic_write(path, text, mode)
    except OSError as err:
        raise ConfigError(f"{path}: cannot write: {err.strerror or err}") from None


def _atomic_write(path: Path, text: str, mode: int) -> None:
    real = Path(os.path.realpath(path))
    with contextlib.suppress(FileNotFoundError):
        mode = real.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="latin-1", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(tmp).replace(real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(real.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_properties(path: Path, template: Path | None = None) -> Properties:
    """The file as Java reads it (ISO-8859-1); a missing one starts from the template."""
    for candidate in (path, template):
        if candidate is None:
            continue
        try:
            return Properties.parse(candidate.read_text(encoding="latin-1"))
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ConfigError(f"{candidate}: cannot read: {err.strerror}") from None
    return Properties.parse("")


@dataclass(frozen=True)
class Declared:
    set: dict[str, str]
    seed: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> Declared:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, ValueError, RecursionError) as err:
            raise ConfigError(f"{path}: not a declaration file: {err}") from None
        if not isinstance(data, dict) or set(data) - {"set", "seed"}:
            raise ConfigError(f'{path}: expected an object with "set" and "seed"')
        parts: dict[str, dict[str, str]] = {}
        for part in ("set", "seed"):
            table = data.get(part, {})
            if not isinstance(table, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and k for k, v in table.items()
            ):
                raise ConfigError(f'{path}: "{part}" must map property names to strings')
            parts[part] = table
        both = sorted(set(parts["set"]) & set(parts["seed"]))
        if both:
            raise ConfigError(f"{path}: {', '.join(both)} both set and seeded")
        return cls(parts["set"], parts["seed"])


def apply(properties: Path, changes: Mapping[str, str], template: Path | None = None) -> list[str]:
    """Set keys in the file (atomically, only when something changes); returns the changed keys."""
    props = read_properties(properties, template)
    changed = [k for k, v in changes.items() if props.get(k) != v]
    if props.update(changes) or not properties.exists():
        atomic_write(properties, props.render())
    return changed


def merge(
    properties: Path, declared: Declared, template: Path | None = None, state: Path | None = None
) -> list[str]:
    """Merge the declaration into the file; returns the keys whose value changed."""
    state = state or Path(os.path.realpath(properties)).parent / STATE_NAME
    current = read_properties(properties, template)
    try:
        previous = json.loads(state.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError, RecursionError):
        previous = {}  # no state (or a broken one): as on the first merge
    except OSError as err:
        raise ConfigError(f"{state}: cannot read: {err.strerror}") from None
    if not isinstance(previous, dict):
        previous = {}
    changes = dict(declared.set)
    for key, value in declared.seed.items():
        if current.get(key) is None or previous.get(key) != value:
            changes[key] = value
    changed = apply(properties, changes, template)
    if previous != declared.seed:
        atomic_write(state, json.dumps(declared.seed, indent=2, sort_keys=True) + "\n", 0o644)
    return changed


# ---------------------------------------------------------------- cloudstack-setup-agent

# upstream option -> agent.properties key
SETUP_KEYS = {
    "mgt": "host",
    "zone": "zone",
    "pod": "pod",
    "cluster": "cluster",
    "guid": "guid",
    "prvNic": "private.network.device",
    "pubNic": "public.network.device",
    "guestNic": "guest.network.device",
}


def setup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudstack-setup-agent",
        description=(
            "Configure the CloudStack agent on NixOS as the management server asks on Add Host: "
            "record zone, pod, cluster, GUID, management servers and NICs in agent.properties "
            "and restart the agent. libvirt, bridges and the firewall are NixOS configuration."
        ),
    )
    parser.add_argument("-a", action="store_true", dest="auto", help="non-interactive (Add Host)")
    parser.add_argument("-m", "--host", dest="mgt", help="management server(s), comma-separated")
    parser.add_argument("-z", "--zone", dest="zone", help="zone id")
    parser.add_argument("-p", "--pod", dest="pod", help="pod id")
    parser.add_argument("-c", "--cluster", dest="cluster", help="cluster id")
    parser.add_argument("-t", "--hypervisor", dest="hypervisor", default="kvm")
    parser.add_argument("-g", "--guid", dest="guid", help="host GUID")
    parser.add_argument(
        "-s", "--secure", action="store_true", dest="secure", help="libvirt TLS (certificates)"
    )
    parser.add_argument("--pubNic", dest="pubNic", help="public traffic bridge")
    parser.add_argument("--prvNic", dest="prvNic", help="private (management) traffic bridge")
    parser.add_argument("--guestNic", dest="guestNic", help="guest traffic bridge")
    parser.add_argument(
        "--properties", type=Path, default=DEFAULT_PROPERTIES, help=argparse.SUPPRESS
    )
    parser.add_argument("--declared", type=Path, default=DEFAULT_DECLARED, help=argparse.SUPPRESS)
    return parser


def system_run(cmd: Sequence[str]) -> int:
    return subprocess.run(list(cmd), check=False).returncode


def setup(argv: Sequence[str], run: Runner = system_run) -> int:
    args, unknown = setup_parser().parse_known_args(list(argv))
    if unknown:
        print(f"cloudstack-setup-agent: ignoring {' '.join(unknown)}", file=sys.stderr)
    if args.hypervisor != "kvm":
        raise ConfigError(f"hypervisor {args.hypervisor!r} is not supported here (only kvm)")
    wanted = {
        SETUP_KEYS[name]: getattr(args, name).strip()
        for name in SETUP_KEYS
        if getattr(args, name) is not None and getattr(args, name).strip()
    }
    if args.auto:
        missing = [
            flag
            for flag, name in (
                ("-m", "mgt"),
                ("-z", "zone"),
                ("-p", "pod"),
                ("-c", "cluster"),
                ("-g", "guid"),
            )
            if not (getattr(args, name) or "").strip()
        ]
        if missing:
            raise ConfigError(f"-a needs {', '.join(missing)}")
    elif not args.secure and wanted:
        raise ConfigError("interactive setup is not supported: pass -a with the values")
    declared = Declared.load(args.declared)
    conflicts = [
        f"{key}: management server says {value!r}, this host declares {declared.set[key]!r}"
        for key, value in wanted.items()
        if key in declared.set and declared.set[key] != value
    ]
    if conflicts:
        # The declared value would win again at the next agent start, and the management
        # server would wait for a host that never reports what it asked for.
        raise ConfigError(
            "the management server's values differ from this host's NixOS configuration "
            "(fix the configuration, or add the host with matching values): " + "; ".join(conflicts)
        )
    if wanted:
        apply(args.properties, {**wanted, "hypervisor.type": args.hypervisor})
    if args.secure:
        # The libvirt TLS socket waits for the certificates keystore-cert-import just wrote
        # (a start condition); starting sockets.target again starts it. libvirtd reads the
        # certificates when it starts; its guests keep running across the restart.
        for cmd in (
            ["systemctl", "start", "sockets.target"],
            ["systemctl", "try-restart", "libvirtd.service"],
        ):
            if run(cmd) != 0:
                raise ConfigError(f"{' '.join(cmd)} failed")
    if args.auto:
        if run(["systemctl", "restart", "cloudstack-agent.service"]) != 0:
            raise ConfigError("restarting cloudstack-agent.service failed")
        print("CloudStack Agent setup is done!")
    return 0


# ---------------------------------------------------------------- service

SERVICE_ACTIONS = {
    "start": "start",
    "stop": "stop",
    "restart": "restart",
    "reload": "reload",
    "force-reload": "reload-or-restart",
    "try-restart": "try-restart",
    "condrestart": "try-restart",
    "status": "status",
}


def service(argv: Sequence[str], run: Runner = system_run) -> int:
    """`service NAME ACTION` as on SysV-compatible distributions, through systemctl."""
    if len(argv) != 2 or argv[1] not in SERVICE_ACTIONS:
        actions = "|".join(SERVICE_ACTIONS)
        raise ConfigError(f"usage: service NAME {actions}")
    name, action = argv
    if not name or name.startswith("-") or "/" in name:
        raise ConfigError(f"{name!r} is not a service name")
    unit = name if "." in name else f"{name}.service"
    return run(["systemctl", SERVICE_ACTIONS[action], unit])


# ---------------------------------------------------------------- command line


def merge_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="cloudstack-agent-config merge")
    parser.add_argument("--properties", type=Path, default=DEFAULT_PROPERTIES)
    parser.add_argument("--declared", type=Path, default=DEFAULT_DECLARED)
    parser.add_argument("--template", type=Path, help="contents for a missing agent.properties")
    args = parser.parse_args(list(argv))
    changed = merge(args.properties, Declared.load(args.declared), args.template)
    if changed:
        keys = ", ".join(escape(key, key=True) for key in changed)  # ASCII, as in the file
        line = f"{args.properties}: set {keys}"
        print(line.encode("utf-8", "backslashreplace").decode("utf-8"))
    return 0


def main(argv: Iterable[str] | None = None, run: Runner = system_run) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Callable[[Sequence[str]], int]] = {
        "merge": merge_main,
        "setup": lambda rest: setup(rest, run),
        "service": lambda rest: service(rest, run),
    }
    if not args or args[0] not in commands:
        print(f"usage: cloudstack-agent-config {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    try:
        return commands[args[0]](args[1:])
    except ConfigError as err:
        print(f"{args[0]}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
