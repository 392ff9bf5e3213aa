"""The pipeline: inventory -> typed hosts -> fleet checks -> NixOS settings -> file contents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import HostContext, Settings, merge_settings
from kvmfleet.fleet import Claim, PeerClaim, duplicate_identities, peers_that_are_hosts
from kvmfleet.inventory import (
    GENERATED_FILE,
    HOST_KEY_FILE,
    HOSTS_DIR,
    HostInventory,
    Inventory,
    entry_kind,
    load,
)
from kvmfleet.locate import (
    broken_tables,
    locate,
    locate_missing,
    merge_per_host,
    without_broken_site,
)
from kvmfleet.model import Host
from kvmfleet.nix import NixRenderError, render_module
from kvmfleet.output import Planned, classify, classify_orphan, with_header
from kvmfleet.ports import port_findings
from kvmfleet.problems import InventoryError, KeyPath, Problem, Severity, sort_problems
from kvmfleet.repeats import overlaps, repeated_values
from kvmfleet.site import check_site
from kvmfleet.sopsconfig import ADMINS_FILE, SOPS_CONFIG, Recipient, load_admins
from kvmfleet.sopsconfig import render as render_sops_config
from kvmfleet.validate import collect, validate_host


@dataclass(frozen=True)
class HostResult:
    inventory: HostInventory
    host: Host
    settings: Settings

    @property
    def name(self) -> str:
        return self.inventory.name

    @property
    def path(self) -> str:
        return f"{HOSTS_DIR}/{self.name}/{GENERATED_FILE}"

    @property
    def sources(self) -> list[str]:
        files = [layer.file for layer in self.inventory.layers]
        if self.inventory.host_key is not None:
            files.append(f"{HOSTS_DIR}/{self.name}/{HOST_KEY_FILE}")
        return list(dict.fromkeys(files))


@dataclass(frozen=True)
class Fleet:
    inventory: Inventory
    hosts: tuple[HostResult, ...]
    warnings: tuple[Problem, ...]
    # secrets/admins.txt: recipients of every host's sops file
    admins: tuple[Recipient, ...] = ()


def build(root: Path) -> Fleet:
    """Validate the whole fleet and compute every host's settings; raise InventoryError with every
    error of the run (warnings included) if anything is wrong."""
    inventory = load(root, partial=True)
    if any(p.file == inventory.site_file for p in inventory.problems):
        # Without site.toml every host would miss its defaults: report the cause, not the cascade.
        raise InventoryError(inventory.problems)
    site_problems = check_site(inventory.site, inventory.site_file)
    problems: list[Problem] = [*inventory.problems, *site_problems]
    admins: tuple[Recipient, ...] = ()
    try:
        admins = load_admins(root)
    except InventoryError as exc:
        problems.extend(exc.problems)
    broken_site = broken_tables(inventory.site, site_problems)
    claims: list[Claim] = []
    peers: list[PeerClaim] = []
    valid: list[tuple[HostInventory, Host]] = []
    silent: list[HostInventory] = []  # invalid through site.toml values, reported by check_site
    checked = [(inv, validate_host(inv)) for inv in inventory.hosts]
    site_exists = entry_kind(root / inventory.site_file) != "missing"
    missing = locate_missing(
        [(inv, without_broken_site(inv, c.missing, broken_site)) for inv, c in checked],
        inventory.site_file,
        site_exists,
    )
    # Without site.toml, hosts that lack its keys would only report more of the same.
    without_site = not site_exists and any(p.file == inventory.site_file for p in missing)
    problems.extend(missing)
    for inv, result in checked:
        problems.extend(result.problems)
        host = result.host or result.partial
        before = len(problems)
        flagged: list[KeyPath] = []  # what a capability already says something about
        if host is not None and not (without_site and result.missing):
            # A host with broken tables still reports what its valid tables show, and claims
            # its fleet-unique values: one run tells everything it can know.
            ctx = HostContext(inv.name, host, inv.host_key)
            for cap in REGISTRY:
                found = collect(cap.findings(ctx))
                identities = collect(cap.identities(ctx))
                flagged.extend(f.path for f in found)
                # (a host's name is claimed at no key: the directory names it)
                flagged.extend(identity.path for identity in identities if identity.path)
                problems.extend(locate(inv, f) for f in found)
                claims.extend(Claim(inv, identity) for identity in identities)
                peers.extend(PeerClaim(inv, peer) for peer in collect(cap.peers(ctx)))
            found = collect(port_findings(ctx))
            flagged.extend(f.path for f in found)
            problems.extend(locate(inv, f) for f in found)
        if result.host is None:
            if not result.missing and not any(
                p.severity is Severity.ERROR for p in [*result.problems, *problems[before:]]
            ):
                silent.append(inv)
            continue
        problems.extend(_untranslated(inv, result.host))
        problems.extend(
            locate(inv, f)
            for f in repeated_values(result.host)
            if not any(overlaps(f.path, path) for path in flagged)
        )
        if not any(p.severity is Severity.ERROR for p in problems[before:]):
            valid.append((inv, result.host))
    problems.extend(duplicate_identities(claims))
    problems.extend(peers_that_are_hosts(claims, peers))
    if silent and not any(
        p.severity is Severity.ERROR and p.file == inventory.site_file for p in problems
    ):
        # A safety net: an invalid host is never skipped without a word.
        problems.extend(
            Problem(
                inv.file,
                (),
                "is invalid through a value it inherits from site.toml; see `kvmfleet show`",
            )
            for inv in silent
        )
    problems = merge_per_host(problems)
    if any(p.severity is Severity.ERROR for p in problems):
        raise InventoryError(problems)
    results = tuple(
        HostResult(inv, host, host_settings(HostContext(inv.name, host, inv.host_key)))
        for inv, host in valid
    )
    return Fleet(inventory, results, tuple(sort_problems(problems)), admins)


def host_settings(ctx: HostContext) -> Settings:
    out: Settings = {}
    for cap in REGISTRY:
        if cap.settings is not None:
            merge_settings(out, cap.settings(ctx), cap.name)
    return out


def _untranslated(inv: HostInventory, host: Host) -> list[Problem]:
    """Tables this version validates but does not yet turn into NixOS settings: say so, never pretend."""
    tables = []
    owners = []
    for cap in REGISTRY:
        if cap.settings is not None:
            continue
        used = [t for t in cap.tables if t in inv.data and getattr(host, t) is not None]
        tables += used
        owners += [cap.name] if used else []
    if not tables:
        return []
    message = (
        f"{', '.join(tables)}: validated, but not yet turned into NixOS settings "
        f"(pending capabilities: {', '.join(owners)})"
    )
    return [Problem(inv.file, (), message, Severity.WARNING)]


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
