"""site.toml on its own: every layer (the top level and each role table) checked once, whether or
not a host uses it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kvmfleet.hygiene import content_findings
from kvmfleet.model import Host
from kvmfleet.model.base import ROLES
from kvmfleet.phrasing import describe, translate, unknown
from kvmfleet.problems import KeyPath, Problem
from kvmfleet.validate import pitfall_findings


def check_site(site: dict[str, Any], site_file: str) -> list[Problem]:
    """site.toml on its own: `[roles]` holds one table per known role, and every layer (the top
    level and each role table) has only known keys of the right types, even where no host uses it."""
    top = {k: v for k, v in site.items() if k != "roles"}
    problems = [Problem(site_file, f.path, f.message) for f in content_findings(top, ())]
    roles_table = site.get("roles")
    if isinstance(roles_table, dict):
        for role, layer in roles_table.items():
            problems += [
                Problem(site_file, f.path, f.message)
                for f in content_findings(layer, ("roles", role))
            ]
    elif "roles" in site:
        problems += [
            Problem(site_file, f.path, f.message)
            for f in content_findings(roles_table, ("roles",), None)
        ]
    problems += [Problem(site_file, f.path, f.message, f.severity) for f in pitfall_findings(site)]
    roles = site.get("roles")
    if isinstance(roles, dict):
        for role, table in roles.items():
            if isinstance(table, dict):
                problems += [
                    Problem(site_file, ("roles", role, *f.path), f.message, f.severity)
                    for f in pitfall_findings(table)
                ]
    layers: list[tuple[KeyPath, dict[str, Any]]] = [
        ((), {k: v for k, v in site.items() if k != "roles"})
    ]
    roles = site.get("roles")
    if roles is not None and not isinstance(roles, dict):
        problems.append(
            Problem(
                site_file, ("roles",), f"expected a table of role tables, got {describe(roles)}"
            )
        )
    elif isinstance(roles, dict):
        for role, table in roles.items():
            if role not in ROLES:
                problems.append(Problem(site_file, ("roles", role), unknown("role", role, ROLES)))
            elif not isinstance(table, dict):
                problems.append(
                    Problem(site_file, ("roles", role), f"expected a table, got {describe(table)}")
                )
            else:
                layers.append((("roles", role), table))
                host = table.get("host")
                if isinstance(host, dict) and "roles" in host:
                    problems.append(
                        Problem(
                            site_file,
                            ("roles", role, "host", "roles"),
                            "a role layer cannot choose roles: set host.roles in host.toml "
                            "(or at the top level of site.toml)",
                        )
                    )
    flagged = {p.path for p in problems}
    for prefix, layer in layers:
        try:
            Host.model_validate(layer)
        except ValidationError as exc:
            for finding, missing in translate(exc.errors(include_url=False), layer):
                path = (*prefix, *finding.path)
                # A layer need not be complete: required keys may come from another layer.
                if not missing and not any(path[: len(f)] == f for f in flagged):
                    problems.append(Problem(site_file, path, finding.message))
    return problems
