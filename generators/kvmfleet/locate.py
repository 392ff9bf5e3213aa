"""Which file (and role layer) a finding about a host's merged inventory belongs to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kvmfleet.inventory import HostInventory, Layer
from kvmfleet.problems import Finding, KeyPath, Problem, Severity, format_keypath


def locate(inv: HostInventory, finding: Finding, *, missing: bool = False) -> Problem:
    """Name the file (and, for site roles, the `roles.<role>.` prefix) a finding's key comes from.
    A table the host's own file writes into is the host's (a missing key there, a rule about the
    whole table); a finding located in site.toml says which host it is about."""
    table = finding.path[:-1] if missing else finding.path
    layer = inv.origin(table)
    if layer.file != inv.file and _host_writes_into(inv, table):
        layer = Layer(inv.file)
    path = finding.path
    if layer.role is not None:
        path = ("roles", layer.role, *path)
    message = finding.message if layer.file == inv.file else f"{finding.message} (host {inv.name})"
    return Problem(layer.file, path, message, finding.severity)


def _host_writes_into(inv: HostInventory, table: KeyPath) -> bool:
    depth = len(table)
    return any(
        len(path) > depth and path[:depth] == table and layer.file == inv.file
        for path, layer in inv.origins.items()
    )


def broken_tables(site: Mapping[str, Any], problems: Sequence[Problem]) -> list[KeyPath]:
    """The key paths of site.toml whose value is in error and is not a table (a table of the
    wrong type, a bad value): a rule about a whole table does not stop it giving its keys."""
    out: list[KeyPath] = []
    for problem in problems:
        if problem.severity is not Severity.ERROR or not problem.path:
            continue
        value: Any = site
        for part in problem.path:
            value = value.get(part) if isinstance(value, dict) and isinstance(part, str) else None
        if not isinstance(value, dict):
            out.append(problem.path)
    return out


def without_broken_site(
    inv: HostInventory, missing: Sequence[Finding], broken: Sequence[KeyPath]
) -> list[Finding]:
    """The missing keys of a host that no broken site.toml table was to give it: when `[host]`,
    `[roles]`, a role table or one of its tables has the wrong type, the error there is the cause
    and the hosts' missing keys under it only its echo."""
    roles = (
        inv.data.get("host", {}).get("roles") if isinstance(inv.data.get("host"), dict) else None
    )
    known = roles if isinstance(roles, list) else None  # None: any role may be meant
    prefixes: list[KeyPath] = []
    for path in broken:
        if not path or path[0] != "roles":
            prefixes.append(path)
        elif len(path) == 1:
            prefixes.append(())
        elif known is None or path[1] in known:
            prefixes.append(path[2:])
    return [f for f in missing if not any(f.path[: len(p)] == p for p in prefixes)]


def locate_missing(
    missing: Sequence[tuple[HostInventory, Sequence[Finding]]], site_file: str, site_exists: bool
) -> list[Problem]:
    """Required keys that no layer sets, blamed where the fix belongs:
    - in the host's file when the host writes into that table, or when other hosts set the key
      in their own files (a per-host value, such as a GUID, that no site layer can give);
    - once in site.toml when the table comes from a site layer that every host relies on for it;
    - and, when there is no site.toml at all and several hosts lack keys, one line saying so."""
    if not site_exists and sum(1 for _, findings in missing if findings) >= 2:
        keys = sorted({format_keypath(f.path) for _, findings in missing for f in findings})
        hosts = sum(1 for _, findings in missing if findings)
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        return [
            Problem(
                site_file,
                (),
                f"no such file, and {hosts} hosts lack required keys that fleet-wide defaults "
                f"would give them ({shown}): create it, or set the keys in each host.toml",
            )
        ]
    set_by_a_host = {
        path for inv, _ in missing for path, layer in inv.origins.items() if layer.file == inv.file
    }
    per_host: list[Problem] = []
    per_layer: dict[tuple[str, KeyPath], list[str]] = {}
    for inv, findings in missing:
        for finding in findings:
            table = finding.path[:-1]
            layer = inv.origin(table)
            if layer.file == inv.file or _host_writes_into(inv, table):
                per_host.append(Problem(inv.file, finding.path, finding.message))
            elif finding.path in set_by_a_host:
                per_host.append(
                    Problem(
                        inv.file,
                        finding.path,
                        f"{finding.message} (a per-host value: other hosts set it in their own "
                        f"host.toml; {layer} cannot)",
                    )
                )
            else:
                path = ("roles", layer.role, *finding.path) if layer.role else finding.path
                per_layer.setdefault((layer.file, path), []).append(inv.name)
    per_site = [
        Problem(
            file,
            path,
            f"required key is missing (host{'s' if len(names) > 1 else ''} "
            f"{', '.join(sorted(names))})",
        )
        for (file, path), names in per_layer.items()
    ]
    return per_host + per_site


_FOR_HOST = re.compile(r" \(host ([a-z0-9-]+)\)\Z")


def merge_per_host(problems: Iterable[Problem]) -> list[Problem]:
    """One line for the same finding located in a shared file (site.toml) for several hosts:
    `... (hosts kvm01, kvm02)` instead of a line per host."""
    out: list[Problem] = []
    groups: dict[tuple[str, KeyPath, str, Severity], list[str]] = {}
    for problem in problems:
        match = _FOR_HOST.search(problem.message)
        if match is None:
            out.append(problem)
            continue
        key = (problem.file, problem.path, problem.message[: match.start()], problem.severity)
        groups.setdefault(key, []).append(match[1])
    for (file, path, message, severity), names in groups.items():
        unique = sorted(set(names))
        hosts = f"host {unique[0]}" if len(unique) == 1 else f"hosts {', '.join(unique)}"
        out.append(Problem(file, path, f"{message} ({hosts})", severity))
    return out
