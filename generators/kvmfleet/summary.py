"""One host's part of a run, as the fleet-wide stage needs it: its problems, its missing keys, what
it declares to fleet-wide checks, and the digest of its generated file. Small plain data, so that a
worker process can hand it back and the cache can keep it per host (as JSON: a cache file is
never code). Light imports: the models are not needed to read a summary."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvmfleet.fleet import DECLARATIONS, FLEET_CHECKS, Declared
from kvmfleet.inventory import Layer
from kvmfleet.locate import Missing
from kvmfleet.problems import Finding, KeyPath, Problem, Severity

# The groups a host's items join: (check index in FLEET_CHECKS, tag, the items' indices in the
# host's declarations, the group keys), one entry per check and tag.
Groups = tuple[tuple[int, str, tuple[int, ...], tuple[str, ...]], ...]


class BadSummaryError(ValueError):
    """A stored summary that is not what this version writes: the cache entry is not used."""


class Declarations:
    """A host's declared items, in the order its capabilities gave them; decoded from their
    stored form only when a fleet check looks at one of them."""

    def __init__(self, host: str, file: str, text: str, items: list[Declared[Any]] | None = None):
        self.host = host
        self.file = file
        self.text = text
        self._items = items

    def items(self) -> list[Declared[Any]]:
        if self._items is None:
            self._items = _decode_items(self.host, self.file, self.text)
        return self._items


@dataclass(frozen=True)
class HostSummary:
    name: str
    file: str
    roles: tuple[str, ...] | None  # host.roles as listed (locate.listed_roles)
    host_key: str | None  # its public host key's line (the .sops.yaml rules read it)
    problems: tuple[Problem, ...]  # its own values' validation
    missing: tuple[Missing, ...]  # required keys no layer sets, located by the fleet stage
    findings: tuple[Problem, ...]  # the capabilities' findings
    model_problems: tuple[Problem, ...]  # about its valid model (untranslated tables, repeats)
    valid: bool  # its generated file may be written once the fleet is valid
    silent: bool  # invalid only through a site.toml value (reported there)
    output: str | None  # sha256 of its generated file, when valid
    render_problem: Problem | None  # when valid but its settings cannot be written as Nix
    groups: Groups
    declared: Declarations


def group_keys(items: Sequence[Declared[Any]]) -> Groups:
    out: dict[tuple[int, str], tuple[list[int], list[str]]] = {}
    for index, declared in enumerate(items):
        for number, check in enumerate(FLEET_CHECKS):
            for key, tag in check.keys(declared.kind, declared.item):
                indices, keys = out.setdefault((number, tag), ([], []))
                indices.append(index)
                keys.append(key)
    return tuple((n, t, tuple(i), tuple(k)) for (n, t), (i, k) in out.items())


def data_digest(table: dict[str, Any]) -> str:
    """A parsed TOML file's digest. repr keeps types apart ('1' and 1, a date and its text) and
    key order, both of which messages and output may depend on."""
    return hashlib.sha256(repr(table).encode()).hexdigest()


# --- to and from JSON ---------------------------------------------------------------------------


def encode(summary: HostSummary, *, declared: bool = True) -> dict[str, Any]:
    """The summary as JSON data; without its declarations' text if not `declared` (the cache keeps
    that apart: it is read only for the hosts a fleet check looks at)."""
    out = {
        "roles": None if summary.roles is None else list(summary.roles),
        "host_key": summary.host_key,
        "problems": [_problem(p) for p in summary.problems],
        "missing": [
            [list(m.finding.path), m.finding.message, m.layer.file, m.layer.role, m.own]
            for m in summary.missing
        ],
        "findings": [_problem(p) for p in summary.findings],
        "model_problems": [_problem(p) for p in summary.model_problems],
        "valid": summary.valid,
        "silent": summary.silent,
        "output": summary.output,
        "render_problem": None
        if summary.render_problem is None
        else _problem(summary.render_problem),
        "groups": [[n, t, list(i), list(k)] for n, t, i, k in summary.groups],
    }
    if declared:
        out["declared"] = summary.declared.text
    return out


def encode_items(items: Sequence[Declared[Any]]) -> str:
    """The stored form of a host's declarations: JSON, compressed (to a quarter: the cache holds
    every host's, and is read and written whole on every run) and in base64 (one line of text).
    Decoded only for the hosts a fleet check looks at."""
    text = json.dumps(
        [[d.kind, d.where.file, d.where.role, _fields(d.item)] for d in items],
        separators=(",", ":"),
    )
    return base64.b64encode(zlib.compress(text.encode())).decode("ascii")


def decode(name: str, file: str, doc: Any, declared: str | None = None) -> HostSummary:
    """A summary from its JSON form; BadSummaryError if it is not exactly what `encode` writes.
    `declared`: the declarations' text, when kept apart from `doc`."""
    try:
        return HostSummary(
            name=name,
            file=file,
            roles=None if doc["roles"] is None else tuple(_str(r) for r in _list(doc["roles"])),
            host_key=None if doc["host_key"] is None else _str(doc["host_key"]),
            problems=tuple(_to_problem(p) for p in _list(doc["problems"])),
            missing=tuple(_to_missing(m) for m in _list(doc["missing"])),
            findings=tuple(_to_problem(p) for p in _list(doc["findings"])),
            model_problems=tuple(_to_problem(p) for p in _list(doc["model_problems"])),
            valid=_bool(doc["valid"]),
            silent=_bool(doc["silent"]),
            output=None if doc["output"] is None else _str(doc["output"]),
            render_problem=None
            if doc["render_problem"] is None
            else _to_problem(doc["render_problem"]),
            groups=_to_groups(doc["groups"]),
            declared=Declarations(
                name, file, _str(doc["declared"] if declared is None else declared)
            ),
        )
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise BadSummaryError(str(exc)) from None


def _problem(p: Problem) -> list[Any]:
    return [p.file, list(p.path), p.message, p.severity.value]


def _to_problem(doc: Any) -> Problem:
    file, path, message, severity = _list(doc)
    return Problem(_str(file), _path(path), _str(message), Severity(_str(severity)))


def _to_missing(doc: Any) -> Missing:
    path, message, file, role, own = _list(doc)
    layer = Layer(_str(file), None if role is None else _str(role))
    return Missing(Finding(_path(path), _str(message)), layer, _bool(own))


def _to_groups(doc: Any) -> Groups:
    """The groups, checked as `encode` writes them; the types of their items are gathered and
    checked once per host (a thousand hosts' groups are decoded on every edit)."""
    out = []
    index_types: set[type] = set()
    key_types: set[type] = set()
    for group in _list(doc):
        if type(group) is not list or len(group) != 4:
            raise BadSummaryError("group")
        check, tag, indices, keys = group
        if not (
            type(check) is int
            and type(tag) is str
            and type(indices) is list
            and type(keys) is list
            and len(indices) == len(keys)
        ):
            raise BadSummaryError("group")
        index_types.update(map(type, indices))
        key_types.update(map(type, keys))
        out.append((check, tag, tuple(indices), tuple(keys)))
    if not (index_types <= _INT and key_types <= _STR):
        raise BadSummaryError("groups")
    return tuple(out)


_INT, _STR = frozenset({int}), frozenset({str})


def _decode_items(host: str, file: str, text: str) -> list[Declared[Any]]:
    try:
        out: list[Declared[Any]] = []
        data = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
        for entry in _list(json.loads(data)):
            kind, where_file, where_role, fields = _list(entry)
            item_type = DECLARATIONS[_str(kind)]
            if not isinstance(fields, dict):
                raise BadSummaryError("fields")
            item = item_type(**{_str(k): _plain(v) for k, v in fields.items()})
            role = None if where_role is None else _str(where_role)
            out.append(Declared(host, file, Layer(_str(where_file), role), kind, item))
        return out
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise BadSummaryError(str(exc)) from None


def _fields(item: Any) -> dict[str, Any]:
    """A declared item's data fields (a `renew` function is for `kvmfleet new`, not stored), but
    those at their default: the class gives them back, and a fleet's cache holds thousands.
    Plain data only (tuples are written as JSON arrays)."""
    defaults = _field_defaults(type(item))
    out = {
        name: value
        for name, value in vars(item).items()
        if not (callable(value) or defaults.get(name, _NO_DEFAULT) == value)
    }
    for value in out.values():
        if type(value) not in _PLAIN and not (
            type(value) is tuple and all(type(v) in _PLAIN for v in value)
        ):
            raise TypeError(
                f"a declared item holds {type(value).__name__}: only plain data is cached"
            )
    return out


_PLAIN = frozenset({str, int, float, bool, type(None)})


_NO_DEFAULT = object()


def _field_defaults(item_type: type[Any]) -> dict[str, Any]:
    """A declaration class's fields that have a default, and the default (asked once per class,
    not per item)."""
    known = _FIELD_DEFAULTS.get(item_type)
    if known is None:
        known = {
            f.name: f.default
            for f in dataclasses.fields(item_type)
            if f.default is not dataclasses.MISSING
        }
        _FIELD_DEFAULTS[item_type] = known
    return known


_FIELD_DEFAULTS: dict[type[Any], dict[str, Any]] = {}


def _plain(value: Any) -> Any:
    """JSON arrays back to the tuples the items hold."""
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise BadSummaryError("value")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BadSummaryError("expected a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise BadSummaryError("expected a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadSummaryError("expected an integer")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadSummaryError("expected a boolean")
    return value


def _path(value: Any) -> KeyPath:
    out: list[str | int] = []
    for part in _list(value):
        out.append(part if isinstance(part, str) else _int(part))
    return tuple(out)
