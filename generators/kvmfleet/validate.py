"""Validate one host's merged inventory into a typed `Host`, turning every error into a one-line
Problem located in the file that holds the value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from kvmfleet.capabilities import REGISTRY
from kvmfleet.hygiene import content_findings
from kvmfleet.inventory import HostInventory
from kvmfleet.locate import locate
from kvmfleet.model import Host
from kvmfleet.model.base import ROLES
from kvmfleet.phrasing import translate
from kvmfleet.problems import Finding, KeyPath, Problem, Severity


def validate_host(inv: HostInventory) -> tuple[Host | None, list[Problem]]:
    """The typed host, or None with the problems that prevent it."""
    # Values from site.toml are checked once by check_site; here only the host's own file's
    # values, and what only the merge shows (missing keys, capability rules).
    content = [*content_findings(inv.data, ()), *pitfall_findings(inv.data)]
    flagged = {f.path for f in content}
    problems = [locate(inv, f) for f in content if _own(inv, f.path)]
    # With an unknown role, a role layer is missing: "required key" errors would mislead.
    skip_missing = _has_unknown_role(inv.data)
    try:
        host = Host.model_validate(inv.data)
    except ValidationError as exc:
        for finding, missing in translate(exc.errors(include_url=False), inv.data):
            if missing and skip_missing:
                continue
            if not missing and not _own(inv, finding.path):
                continue
            if not any(finding.path[: len(path)] == path for path in flagged):
                problems.append(locate(inv, finding, missing=missing))
        # An error in site.toml alone still makes this host invalid.
        return None, problems
    invalid = any(f.severity is Severity.ERROR for f in content)
    return (None if invalid else host), problems


def _own(inv: HostInventory, path: KeyPath) -> bool:
    return inv.origin(path).file == inv.file


def _has_unknown_role(data: dict[str, Any]) -> bool:
    section = data.get("host")
    if not isinstance(section, dict) or "roles" not in section:
        return False
    roles = section["roles"]
    return not isinstance(roles, list) or any(role not in ROLES for role in roles)


def pitfall_findings(layer: dict[str, Any]) -> Iterator[Finding]:
    """Every capability's pitfall checks on one raw layer (site top level, a role table, a host)."""
    for cap in REGISTRY:
        yield from cap.pitfalls(layer)
