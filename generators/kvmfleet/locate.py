"""Which file (and role layer) a finding about a host's merged inventory belongs to."""

from __future__ import annotations

from kvmfleet.inventory import HostInventory, Layer
from kvmfleet.problems import Finding, KeyPath, Problem


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
