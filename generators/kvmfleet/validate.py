"""Validate one host's merged inventory into a typed `Host`, turning every error into a one-line
Problem located in the file that holds the value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, cast

from pydantic import ValidationError, create_model

from kvmfleet.capabilities import REGISTRY
from kvmfleet.hygiene import content_findings
from kvmfleet.inventory import HostInventory
from kvmfleet.locate import locate
from kvmfleet.model import Host
from kvmfleet.model.base import ROLES
from kvmfleet.model.types import Model
from kvmfleet.phrasing import translate
from kvmfleet.problems import Finding, KeyPath, Problem, Severity

T = TypeVar("T")


@dataclass(frozen=True)
class Validated:
    """One host's validation. `host` is set only when the host is valid. `partial` is set when
    some tables are: reading a broken table from it raises BrokenTable, so capabilities can still
    report what they can know (their findings, their fleet-wide claims) without cascades.
    `missing` are required keys no layer sets, not yet located: whom to blame (the host or a
    site layer) is a question about the whole fleet."""

    host: Host | None
    partial: Host | None
    problems: list[Problem]
    missing: list[Finding]


class BrokenTable(BaseException):
    """A capability read a table that did not validate. A BaseException, so that no
    `except Exception` in a capability can swallow it."""


def validate_host(inv: HostInventory) -> Validated:
    """The typed host, or the problems that prevent it and what can still be checked."""
    # Values from site.toml are checked once by check_site; here only the host's own file's
    # values, and what only the merge shows (missing keys, capability rules).
    content = [*content_findings(inv.data, ()), *pitfall_findings(inv.data)]
    flagged = {f.path for f in content}
    problems = [locate(inv, f) for f in content if _own(inv, f.path)]
    invalid = any(f.severity is Severity.ERROR for f in content)
    try:
        host = Host.model_validate(inv.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        return Validated(None if invalid else host, host, problems, [])
    # With an unknown role, a role layer is missing: "required key" errors would mislead.
    skip_missing = _roles_unknown(inv.data)
    missing: list[Finding] = []
    for finding, is_missing in translate(errors, inv.data):
        if any(finding.path[: len(path)] == path for path in flagged):
            continue
        if is_missing:
            if not skip_missing:
                missing.append(finding)
        elif _own(inv, finding.path):
            problems.append(locate(inv, finding))
        # An error in site.toml alone still makes this host invalid (check_site reports it).
    broken = frozenset(str(e["loc"][0]) for e in errors if e["loc"])
    return Validated(None, _partial_host(inv.data, broken), problems, missing)


def _partial_host(data: dict[str, Any], broken: frozenset[str]) -> Host | None:
    values: dict[str, Any] = {}
    for name in Host.model_fields:
        if name in broken:
            continue
        part = {name: data[name]} if name in data else {}
        try:
            values[name] = getattr(_field_model(name).model_validate(part), name)
        except ValidationError:
            return None  # cannot happen for a field pydantic did not name; never guess
    return cast(Host, _PartialHost(values, broken))


class _PartialHost:
    """Stands in for `Host` when some of its tables are broken."""

    def __init__(self, values: dict[str, Any], broken: frozenset[str]) -> None:
        self._values = values
        self._broken = broken

    def __getattr__(self, name: str) -> Any:
        if name in self._broken:
            raise BrokenTable(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


@cache
def _field_model(name: str) -> type[Model]:
    """A model of one `Host` field alone, to validate that table on its own."""
    field = Host.model_fields[name]
    model: type[Model] = create_model(
        f"Host_{name}", __base__=Model, **{name: (field.annotation, field)}
    )  # type: ignore[call-overload]
    return model


def collect(items: Iterable[T]) -> list[T]:
    """What a capability yields until it reads a broken table."""
    out: list[T] = []
    try:
        for item in items:
            out.append(item)
    except BrokenTable:
        pass
    return out


def _own(inv: HostInventory, path: KeyPath) -> bool:
    return inv.origin(path).file == inv.file


def _roles_unknown(data: dict[str, Any]) -> bool:
    """True when the host's roles cannot be read (so its role layers may be missing)."""
    if "host" not in data:
        return False
    section = data["host"]
    if not isinstance(section, dict):
        return True  # `[[host]]` or `host = 1`: which roles were meant is unknown
    if "roles" not in section:
        return False
    roles = section["roles"]
    return not isinstance(roles, list) or any(role not in ROLES for role in roles)


def pitfall_findings(layer: dict[str, Any]) -> Iterator[Finding]:
    """Every capability's pitfall checks on one raw layer (site top level, a role table, a host)."""
    for cap in REGISTRY:
        yield from cap.pitfalls(layer)
