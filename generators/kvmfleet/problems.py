"""Problems found in the inventory: one line each, naming the file, the key path and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+\Z")


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


def format_keypath(path: Sequence[str | int]) -> str:
    """Render a key path the way TOML spells it: `network.bonds.bond0`, `sysctl."net.ipv4.x"`,
    `iscsi.targets[0].portal`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.match(part) else quote(part)
        out += f".{text}" if out else text
    return out


@dataclass(frozen=True, order=True)
class Problem:
    """One finding. `file` is relative to the fleet root (e.g. `hosts/kvm01/host.toml`)."""

    file: str
    path: KeyPath
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{printable(self.file)}: " if self.file else ""
        key = f"{format_keypath(self.path)}: " if self.path else ""
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{prefix}{where}{key}{self.message}"


@dataclass(frozen=True)
class Finding:
    """A problem as a capability sees it: a key path in the merged host inventory, not yet a file."""

    path: KeyPath
    message: str
    severity: Severity = Severity.ERROR


def error(path: KeyPath, message: str) -> Finding:
    return Finding(path, message, Severity.ERROR)


def warning(path: KeyPath, message: str) -> Finding:
    return Finding(path, message, Severity.WARNING)


class InventoryError(Exception):
    """The inventory is invalid; carries every problem of the run so that all are reported together."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems), key=_sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))


def _sort_key(p: Problem) -> tuple[str, str, str]:
    return (p.file, format_keypath(p.path), p.message)


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(set(problems), key=_sort_key)


def _escape_char(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if not ch.isprintable():
        return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
    return ch


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped, so a message stays one line."""
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


# Longer strings are cut in messages: a 1 MB value must not become a 1 MB line.
QUOTE_LIMIT = 64


def quote(value: object, limit: int | None = QUOTE_LIMIT) -> str:
    """A value as it appears in TOML, for messages: strings in double quotes, cut after `limit`
    characters with their length said (None: whole, for showing the inventory itself)."""
    if isinstance(value, str):
        if limit is not None and len(value) > limit:
            shown = "".join(_escape_char(ch) for ch in value[: limit - 16])
            return f'"{shown}..." ({len(value)} characters)'
        return '"' + "".join(_escape_char(ch) for ch in value) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def toml_value(value: object, limit: int | None = QUOTE_LIMIT) -> str:
    """A value as TOML spells it inline, for messages and comments (arrays, inline tables);
    strings cut as `quote` does (None: whole)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v, limit) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v, limit)}" for k, v in value.items()) + " }"
    return quote(value, limit)
