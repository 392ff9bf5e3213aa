"""Which file (and role layer) a finding about a host's merged inventory belongs to."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kvmfleet.inventory import HostInventory, Layer
from kvmfleet.problems import Finding, KeyPath, Problem, Severity, format_keypath


def locate(inv: HostInventory, finding: Finding, *, missing: bool = False) -> Problem:
    """Name the file (and, for site roles, the `roles.<role>.` prefix) a finding's key comes from.
    A table the host's own file writes into is the host's (a missing key there, a rule about the
    whole table); a finding located in site.toml says which host it is about."""
    table = finding.path[:-1] if missing else finding.path
    return locate_at(inv.name, inv.file, place(inv, table), finding)


def place(inv: HostInventory, path: KeyPath) -> Layer:
    """The layer a finding about `path` belongs to: where the value comes from, or the host's
    own file when it writes into that table."""
    layer = inv.origin(path)
    if layer.file != inv.file and _host_writes_into(inv, path):
        return Layer(inv.file)
    return layer


def placer(inv: HostInventory) -> Callable[[KeyPath], Layer]:
    """`place` for many paths of one host: the tables its own file writes into, found once."""
    written = {
        path[:end]
        for path, layer in inv.origins.items()
        if layer.file == inv.file
        for end in range(1, len(path))
    }

    def place_in(path: KeyPath) -> Layer:
        layer = inv.origin(path)
        if layer.file != inv.file and path in written:
            return Layer(inv.file)
        return layer

    return place_in


def locate_at(host: str, host_file: str, layer: Layer, finding: Finding) -> Problem:
    """`locate` with the layer already known (what a host's cached summary keeps)."""
    path = finding.path
    if layer.role is not None:
        path = ("roles", layer.role, *path)
    message = finding.message if layer.file == host_file else f"{finding.message} (host {host})"
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


@dataclass(frozen=True)
class Missing:
    """A required key no layer sets, with what locating it needs from the host's inventory (so a
    host's cached summary can be located without it)."""

    finding: Finding
    layer: Layer  # where the key's table comes from
    own: bool  # the host's own file sets that table or writes into it


def missing_key(inv: HostInventory, finding: Finding) -> Missing:
    table = finding.path[:-1]
    layer = inv.origin(table)
    return Missing(finding, layer, layer.file == inv.file or _host_writes_into(inv, table))


def listed_roles(inv: HostInventory) -> tuple[str, ...] | None:
    """The host's `host.roles` as its merged inventory lists it (None: not a list)."""
    section = inv.data.get("host")
    roles = section.get("roles") if isinstance(section, dict) else None
    return tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None


def without_broken_site(
    roles: Sequence[str] | None, missing: Sequence[Missing], broken: Sequence[KeyPath]
) -> list[Missing]:
    """The missing keys of a host (with `roles`, from `listed_roles`) that no broken site.toml
    table was to give it: when `[host]`, `[roles]`, a role table or one of its tables has the
    wrong type, the error there is the cause and the hosts' missing keys under it only its echo."""
    prefixes: list[KeyPath] = []
    for path in broken:
        if not path or path[0] != "roles":
            prefixes.append(path)
        elif len(path) == 1:
            prefixes.append(())
        elif roles is None or path[1] in roles:  # None: any role may be meant
            prefixes.append(path[2:])
    return [m for m in missing if not any(m.finding.path[: len(p)] == p for p in prefixes)]


def locate_missing(
    missing: Sequence[tuple[str, str, Sequence[Missing]]],
    site_file: str,
    site_exists: bool,
    set_by_a_host: Callable[[], Collection[KeyPath]],
) -> list[Problem]:
    """Required keys that no layer sets (per host: its name, its file, its missing keys), blamed
    where the fix belongs:
    - in the host's file when the host writes into that table, or when other hosts set the key
      in their own files (a per-host value, such as a GUID, that no site layer can give);
    - once in site.toml when the table comes from a site layer that every host relies on for it;
    - and, when there is no site.toml at all and several hosts lack keys, one line saying so.
    `set_by_a_host` gives every key path some host sets in its own file (asked only if needed:
    it reads every host's inventory)."""
    if not site_exists and sum(1 for *_, entries in missing if entries) >= 2:
        keys = sorted({format_keypath(m.finding.path) for *_, entries in missing for m in entries})
        hosts = sum(1 for *_, entries in missing if entries)
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        return [
            Problem(
                site_file,
                (),
                f"no such file, and {hosts} hosts lack required keys that fleet-wide defaults "
                f"would give them ({shown}): create it, or set the keys in each host.toml",
            )
        ]
    per_host: list[Problem] = []
    per_layer: dict[tuple[str, KeyPath], list[str]] = {}
    by_hosts: Collection[KeyPath] | None = None
    for name, file, entries in missing:
        for entry in entries:
            finding, layer = entry.finding, entry.layer
            if entry.own:
                per_host.append(Problem(file, finding.path, finding.message))
                continue
            if by_hosts is None:
                by_hosts = set_by_a_host()
            if finding.path in by_hosts:
                per_host.append(
                    Problem(
                        file,
                        finding.path,
                        f"{finding.message} (a per-host value: other hosts set it in their own "
                        f"host.toml; {layer} cannot)",
                    )
                )
            else:
                path = ("roles", layer.role, *finding.path) if layer.role else finding.path
                per_layer.setdefault((layer.file, path), []).append(name)
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


def own_paths(hosts: Iterable[HostInventory]) -> set[KeyPath]:
    """Every key path some host sets in its own file."""
    return {path for inv in hosts for path, layer in inv.origins.items() if layer.file == inv.file}


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
