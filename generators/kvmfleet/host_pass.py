"""One host's work, which needs no other host: validate it, run every capability on it, render its
generated file, and sum up what the fleet-wide stage needs (`summary.HostSummary`). Many hosts are
spread over the machine's cores with a pool of forked workers."""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import HostContext, Settings, merge_settings
from kvmfleet.fleet import DECLARATIONS, Declared
from kvmfleet.inventory import (
    GENERATED_FILE,
    HOST_FILE,
    HOST_KEY_FILE,
    HOSTS_DIR,
    HostInventory,
    Table,
    entry_kind,
    host_roles,
    layer_host,
    parse_toml,
    read_host_key,
)
from kvmfleet.locate import listed_roles, locate, missing_key, placer
from kvmfleet.model import Host
from kvmfleet.nix import NixRenderError, render_module
from kvmfleet.output import with_header
from kvmfleet.ports import port_findings
from kvmfleet.problems import InventoryError, KeyPath, Problem, Severity
from kvmfleet.repeats import overlaps, repeated_values
from kvmfleet.summary import (
    Declarations,
    HostSummary,
    data_digest,
    encode_items,
    group_keys,
)
from kvmfleet.task import MIN_PARALLEL, Done, Task, can_fork, from_wire, jobs, to_wire
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
        return sources(self.inventory)


@dataclass(frozen=True)
class Computed:
    summary: HostSummary
    text: str | None  # the generated file, when the host is valid and renders
    result: HostResult | None  # the model and settings, when asked to keep them


def sources(inv: HostInventory) -> list[str]:
    files = [layer.file for layer in inv.layers]
    if inv.host_key is not None:
        files.append(f"{HOSTS_DIR}/{inv.name}/{HOST_KEY_FILE}")
    return list(dict.fromkeys(files))


def summarize(inv: HostInventory, *, keep: bool = False) -> Computed:
    result = validate_host(inv)
    host = result.host or result.partial
    findings: list[Problem] = []
    items: list[Declared[Any]] = []
    flagged: list[KeyPath] = []  # what a capability already says something about
    if host is not None:
        # A host with broken tables still reports what its valid tables show, and declares its
        # fleet-unique values: one run tells everything it can know.
        ctx = HostContext(inv.name, host, inv.host_key)
        place = placer(inv)
        for cap in REGISTRY:
            found = collect(cap.findings(ctx))
            flagged.extend(f.path for f in found)
            findings.extend(locate(inv, f) for f in found)
            for kind in DECLARATIONS:
                for item in collect(getattr(cap, kind)(ctx)):
                    items.append(Declared(inv.name, inv.file, place(item.path), kind, item))
                    # (a host's name is claimed at no key: the directory names it)
                    if kind == "identities" and item.path:
                        flagged.append(item.path)
        found = collect(port_findings(ctx))
        flagged.extend(f.path for f in found)
        findings.extend(locate(inv, f) for f in found)
    model_problems: list[Problem] = []
    if result.host is not None:
        model_problems.extend(_untranslated(inv, result.host))
        model_problems.extend(
            locate(inv, f)
            for f in repeated_values(result.host)
            if not any(overlaps(f.path, path) for path in flagged)
        )
    valid = result.host is not None and not _errors([*findings, *model_problems])
    silent = (
        result.host is None and not result.missing and not _errors([*result.problems, *findings])
    )
    text = output = render_problem = kept = None
    if valid and result.host is not None:
        settings = host_settings(HostContext(inv.name, result.host, inv.host_key))
        try:
            text = with_header(render_module(settings), sources(inv))
        except NixRenderError as exc:  # validation should have caught it; never a traceback
            render_problem = Problem(inv.file, (), f"cannot be written as Nix: {exc}")
        else:
            output = hashlib.sha256(text.encode()).hexdigest()
        if keep:
            kept = HostResult(inv, result.host, settings)
    summary = HostSummary(
        name=inv.name,
        file=inv.file,
        roles=listed_roles(inv),
        host_key=inv.host_key,
        problems=tuple(result.problems),
        missing=tuple(missing_key(inv, f) for f in result.missing),
        findings=tuple(findings),
        model_problems=tuple(model_problems),
        valid=valid,
        silent=silent,
        output=output,
        render_problem=render_problem,
        groups=group_keys(items),
        declared=Declarations(inv.name, inv.file, encode_items(items), items),
    )
    return Computed(summary, text, kept)


def _errors(problems: Sequence[Problem]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)


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


# --- many hosts ---------------------------------------------------------------------------------


def compute(task: Task, site: Table, site_file: str, root: Path) -> Done:
    file = f"{HOSTS_DIR}/{task.name}/{HOST_FILE}"
    try:
        table = parse_toml(file, task.raw)
    except InventoryError as exc:
        return Done(task.name, tuple(exc.problems), None, None, None, ())
    inv = layer_host(task.name, file, table, site_file, site)
    key_path = root / HOSTS_DIR / task.name / HOST_KEY_FILE
    if entry_kind(key_path) != "missing":
        try:
            inv = replace(inv, host_key=read_host_key(root, key_path))
        except InventoryError as exc:  # as `load` does: the host is left out, the file named
            return Done(task.name, tuple(exc.problems), None, None, None, ())
    computed = summarize(inv)
    roles = tuple(host_roles(table, site))
    return Done(task.name, (), computed.summary, computed.text, data_digest(table), roles)


# Hosts a worker takes at a time: a few ms each, so a chunk is dozens of ms at most, and the
# exchange per chunk (one message each way) stays negligible.
MAX_CHUNK = 8

_shared: tuple[Table, str, Path] | None = None  # what forked workers inherit


def compute_all(tasks: Sequence[Task], site: Table, site_file: str, root: Path) -> list[Done]:
    """Every task's result, in order; over a pool of forked workers when there are many."""
    with _collector_paced():
        return _compute_all(tasks, site, site_file, root)


# The young generation's threshold during the host pass (Python's default is 700 objects).
GC_YOUNG = 10_000


@contextmanager
def _collector_paced() -> Iterator[None]:
    """The cyclic garbage collector paced for the host pass. Everything made before it (modules,
    models, site.toml) is frozen out of its scans, in forked workers too (whose pages then stay
    shared with the parent's), and the young generation is collected less often: a host leaves
    about 50 objects of cyclic garbage, so rarer collections cost little memory. Measured on a cold 1,000-host
    run in one process: 0.3 s in collections by default, 0.17 s frozen, 0.11 s also paced."""
    threshold = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(max(threshold[0], GC_YOUNG), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen_before:  # what a caller froze itself stays frozen
            gc.unfreeze()


def _compute_all(tasks: Sequence[Task], site: Table, site_file: str, root: Path) -> list[Done]:
    workers = min(jobs(), len(tasks) // (MIN_PARALLEL // 2) or 1)
    if workers <= 1 or len(tasks) < MIN_PARALLEL or not can_fork():
        return [compute(task, site, site_file, root) for task in tasks]
    global _shared
    _shared = (site, site_file, root)
    try:
        context = multiprocessing.get_context("fork")
        try:
            pool = context.Pool(workers)
        except OSError:  # no semaphores here (a sandbox without /dev/shm): one process
            return [compute(task, site, site_file, root) for task in tasks]
        with pool:
            # Small chunks keep both workers busy to the end (a worker left alone with a last
            # big chunk is wall time); each result travels as plain data.
            chunk = max(1, min(MAX_CHUNK, len(tasks) // (workers * 8)))
            encoded = pool.map(_compute_encoded, tasks, chunksize=chunk)
    finally:
        _shared = None
    return [from_wire(task.name, wire) for task, wire in zip(tasks, encoded, strict=True)]


def _compute_encoded(task: Task) -> tuple[Any, ...]:
    assert _shared is not None
    return to_wire(compute(task, *_shared))
