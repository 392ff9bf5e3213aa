"""The pipeline: inventory -> typed hosts -> fleet checks -> NixOS settings -> file contents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvmfleet.fleet_pass import settle
from kvmfleet.host_pass import HostResult, host_settings, summarize
from kvmfleet.inventory import GENERATED_FILE, HOSTS_DIR, Inventory, entry_kind, load
from kvmfleet.locate import own_paths
from kvmfleet.nix import NixRenderError, render_module
from kvmfleet.output import Planned, classify, classify_orphan, with_header
from kvmfleet.problems import InventoryError, Problem
from kvmfleet.site import check_site
from kvmfleet.sopsconfig import ADMINS_FILE, SOPS_CONFIG, Recipient, load_admins
from kvmfleet.sopsconfig import render as render_sops_config

__all__ = ["Fleet", "HostResult", "build", "host_settings", "plan", "render_host", "sops_config"]


@dataclass(frozen=True)
class Fleet:
    inventory: Inventory
    hosts: tuple[HostResult, ...]
    warnings: tuple[Problem, ...]
    # secrets/admins.txt: recipients of every host's sops file
    admins: tuple[Recipient, ...] = ()


def build(root: Path) -> Fleet:
    """Validate the whole fleet and compute every host's settings, without the cache; raise
    InventoryError with every error of the run (warnings included) if anything is wrong. The same
    stages as `generate` (kvmfleet.run), keeping every host's model."""
    inventory = load(root, partial=True)
    if any(p.file == inventory.site_file for p in inventory.problems):
        # Without site.toml every host would miss its defaults: report the cause, not the cascade.
        raise InventoryError(inventory.problems)
    admins, admin_problems = fleet_admins(root)
    computed = [summarize(inv, keep=True) for inv in inventory.hosts]
    warnings = settle(
        site=inventory.site,
        site_file=inventory.site_file,
        site_exists=entry_kind(root / inventory.site_file) != "missing",
        earlier=[*inventory.problems, *admin_problems],
        site_problems=check_site(inventory.site, inventory.site_file),
        summaries=[c.summary for c in computed],
        set_by_a_host=lambda: own_paths(inventory.hosts),
    )
    results = tuple(c.result for c in computed if c.result is not None)
    return Fleet(inventory, results, warnings, admins)


def fleet_admins(root: Path) -> tuple[tuple[Recipient, ...], list[Problem]]:
    """secrets/admins.txt's recipients, or the problems that file has."""
    try:
        return load_admins(root), []
    except InventoryError as exc:
        return (), list(exc.problems)


def render_host(result: HostResult) -> str:
    try:
        body = render_module(result.settings)
    except NixRenderError as exc:  # validation should have caught it; never a traceback
        raise InventoryError(
            [Problem(result.inventory.file, (), f"cannot be written as Nix: {exc}")]
        ) from None
    return with_header(body, result.sources)


def sops_config(fleet: Fleet) -> str | None:
    """`.sops.yaml`'s text, or None while no host has a host key (a fleet without sops)."""
    hosts = [r.inventory for r in fleet.hosts]
    if not any(inv.host_key is not None for inv in hosts):
        return None
    admins_exist = entry_kind(fleet.inventory.root / ADMINS_FILE) == "file"
    return render_sops_config(hosts, fleet.admins, admins_exist)


def plan(fleet: Fleet, only: list[str] | None = None) -> list[Planned]:
    """What generate would write, for the named hosts or (None) the whole fleet incl. orphans."""
    root = fleet.inventory.root
    planned = [
        classify(root, r.path, render_host(r))
        for r in fleet.hosts
        if only is None or r.name in only
    ]
    config = sops_config(fleet)
    if config is not None:
        # fleet-wide: written whatever hosts are named
        planned.append(classify(root, SOPS_CONFIG, config))
    if only is None:
        for name in fleet.inventory.stray_dirs:
            path = f"{HOSTS_DIR}/{name}/{GENERATED_FILE}"
            if (root / path).exists():
                planned.append(classify_orphan(root, path))
    return planned
