"""`generate` and `check` with the cache: only hosts whose inputs changed are validated and rendered
(over both cores when there are many), every other host's summary comes from the cache, and the
fleet-wide stage runs on all summaries. The result is exactly that of `generate.build` from nothing
(a property test compares them after random edits)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmfleet.cache import Inputs, Store, read_inputs, signature
from kvmfleet.fleet_pass import gather_keys, settle
from kvmfleet.inventory import (
    GENERATED_FILE,
    HOST_FILE,
    HOSTS_DIR,
    SITE_FILE,
    HostInventory,
    Table,
    entry_kind,
    load,
    parse_toml,
    read_toml,
)
from kvmfleet.locate import own_paths
from kvmfleet.output import Planned, Status, classify, classify_orphan
from kvmfleet.problems import InventoryError, Problem, Severity
from kvmfleet.sopsconfig import ADMINS_FILE, SOPS_CONFIG, Recipient, load_admins
from kvmfleet.sopsconfig import render as render_sops_config
from kvmfleet.summary import BadSummaryError, HostSummary, data_digest, decode, encode
from kvmfleet.task import Done, Task
from kvmfleet.warm import WarmWorker


@dataclass(frozen=True)
class Outcome:
    root: Path
    hosts: tuple[str, ...]  # the valid fleet's hosts, in order
    files: dict[str, str]  # host -> its generated file
    unchanged: frozenset[str]  # hosts whose file on disk is already exactly that
    render_problems: dict[str, Problem]
    stray_dirs: tuple[str, ...]
    warnings: tuple[Problem, ...]
    sops: str | None = None  # .sops.yaml, when a host has a host key


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _SiteLayers:
    """Digests of site.toml's layers, for the per-host keys."""

    def __init__(self, site: Table) -> None:
        self.top = _sha(repr({k: v for k, v in site.items() if k != "roles"}).encode())
        self.roles = site.get("roles")
        self._done: dict[str, str] = {}

    def digest(self, roles: list[str]) -> str:
        parts = [self.top]
        for role in roles:
            if role not in self._done:
                table = self.roles.get(role) if isinstance(self.roles, dict) else None
                self._done[role] = _sha(repr((role, table)).encode())
            parts.append(self._done[role])
        return _sha("\0".join(parts).encode())


def run(
    root: Path,
    store: Store | None,
    inputs: Inputs | None = None,
    warm: WarmWorker | None = None,
    *,
    saves: bool = False,
) -> Outcome:
    """Validate the fleet, reusing the cache's per-host summaries where the inputs are the same;
    raise InventoryError exactly as `generate.build` would. `inputs`: the files, if already read;
    `warm`: a worker that has loaded the models, for a few hosts to compute; `saves`: the caller
    will save `store` (its reused records are then sealed while the worker computes)."""
    inputs = inputs if inputs is not None else read_inputs(root)
    try:
        return _run(root, store, inputs, warm, saves)
    except (BadSummaryError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        if store is None:
            raise
        # A cache entry that is not what this version writes, found late: do it all again.
        store.hosts, store.site, store.disk = {}, None, {}
        return _run(root, store, inputs, None, saves)


# A job's results: the hosts', and site.toml's findings when they were asked for.
Results = tuple[list[Done], list[Problem] | None]


def _submit(
    todo: list[Task],
    site: Table,
    site_file: str,
    root: Path,
    warm: WarmWorker | None,
    *,
    check_site: bool,
) -> Callable[[], Results]:
    """Start computing the tasks (and checking site.toml, if asked); the function returned gives
    the results. With a warm worker the parent goes on (gathering what it can) meanwhile."""
    if warm is not None:
        if warm.takes(len(todo)) and warm.submit(todo, site, site_file, root, check_site):

            def collected() -> Results:
                results = warm.collect(todo)
                if results is not None:
                    return results
                return _compute(todo, site, site_file, root), None

            return collected
        warm.stop()
    return lambda: (_compute(todo, site, site_file, root), None)


def _compute(todo: list[Task], site: Table, site_file: str, root: Path) -> list[Done]:
    if not todo:
        return []
    from kvmfleet.host_pass import compute_all  # the models: only when needed

    return compute_all(todo, site, site_file, root)


def _run(
    root: Path, store: Store | None, inputs: Inputs, warm: WarmWorker | None, saves: bool
) -> Outcome:
    hosts_kind = entry_kind(root / HOSTS_DIR)
    site_path = root / HOSTS_DIR / SITE_FILE
    site_file = f"{HOSTS_DIR}/{SITE_FILE}"
    site_exists = hosts_kind == "dir" and entry_kind(site_path) != "missing"
    site: Table = {}
    if hosts_kind != "dir":
        load(root)  # raises the problem
    if site_exists:
        try:
            site = read_toml(root, site_path)
        except InventoryError:
            _full(root)  # raises the problems of every file, as `build` reports them
    scan = inputs.scan
    earlier: list[Problem] = [*scan.problems, *inputs.problems]
    layers = _SiteLayers(site)
    old = store.hosts if store is not None else {}
    disk = store.disk if store is not None else {}
    entries: dict[str, str] = {}
    summaries: dict[str, HostSummary] = {}
    files: dict[str, str] = {}
    unchanged: set[str] = set()
    todo: list[Task] = []
    digests: dict[str, str] = {}
    for name in scan.hosts:
        raw = inputs.hosts.get(name)
        if raw is None:
            continue  # unreadable: reported
        file = f"{HOSTS_DIR}/{name}/{HOST_FILE}"
        digests[name] = _sha(raw)
        reused = _reusable(
            old.get(name), raw, digests[name], layers, inputs.host_keys.get(name, "missing")
        )
        summary = None if reused is None else _decoded(name, file, *reused[0])
        if reused is not None and summary is not None and summary.output is not None:
            known, text = _on_disk(root, name, summary.output, disk.get(name))
            if not known:
                summary = None  # its generated file is needed: render it again
            else:
                files[name] = text
                unchanged.add(name)
        if reused is None or summary is None:
            todo.append(Task(name, raw))
            continue
        summaries[name] = summary
        entries[name] = reused[1]
    site_digest = "missing" if inputs.site is None else _sha(inputs.site)
    cached_site = _cached_site_problems(store, site_digest)
    job = None
    if todo or cached_site is None:
        job = _submit(todo, site, site_file, root, warm, check_site=cached_site is None)
    # Meanwhile: the reused hosts' group keys, for the fleet checks, and their cache records.
    gathered = (gather_keys(summaries.values()), frozenset(summaries)) if site_exists else None
    if saves and store is not None and warm is not None and warm.busy:
        store.prepare(entries)
    computed, site_checked = job() if job is not None else ([], None)
    for done in computed:
        if done.summary is None:
            earlier.extend(done.problems)
            continue
        summaries[done.name] = done.summary
        if done.text is not None:
            files[done.name] = done.text
        if store is not None:
            entries[done.name] = _entry(done, done.summary, digests, inputs, layers)
    ordered = [summaries[name] for name in scan.hosts if name in summaries]
    site_problems = cached_site
    if site_problems is None:
        site_problems = site_checked if site_checked is not None else _check_site(site, site_file)
        if store is not None:
            store.site = {
                "bytes": site_digest,
                "problems": [_problem_doc(p) for p in site_problems],
            }
    admins: tuple[Recipient, ...] = ()
    try:
        admins = load_admins(root)
    except InventoryError as exc:
        earlier.extend(exc.problems)
    warnings = settle(
        site=site,
        site_file=site_file,
        site_exists=site_exists,
        earlier=earlier,
        site_problems=site_problems,
        summaries=ordered,
        set_by_a_host=lambda: own_paths(load(root, partial=True).hosts),
        gathered=gathered,
    )
    if store is not None:
        store.hosts = entries
        store.disk = {name: sig for name, sig in disk.items() if name in entries}
    valid = tuple(s.name for s in ordered if s.valid)
    return Outcome(
        root=root,
        hosts=valid,
        files={name: files[name] for name in valid if name in files},
        unchanged=frozenset(unchanged),
        render_problems={s.name: s.render_problem for s in ordered if s.render_problem is not None},
        stray_dirs=scan.stray,
        warnings=warnings,
        sops=_sops_config(root, [s for s in ordered if s.valid], admins),
    )


def _sops_config(root: Path, valid: list[HostSummary], admins: tuple[Recipient, ...]) -> str | None:
    """`.sops.yaml`'s text (generate.sops_config), from the summaries' host keys."""
    if not any(s.host_key is not None for s in valid):
        return None
    # The rules read a host's name and host key only.
    hosts = [HostInventory(s.name, s.file, {}, {}, (), s.host_key) for s in valid]
    return render_sops_config(hosts, admins, entry_kind(root / ADMINS_FILE) == "file")


def _full(root: Path) -> None:
    from kvmfleet.generate import build

    build(root)
    raise AssertionError("build accepted an inventory the cached run could not read")


def _entry(
    done: Done,
    summary: HostSummary,
    digests: dict[str, str],
    inputs: Inputs,
    layers: _SiteLayers,
) -> str:
    """A computed host's cache record: its summary and what it was computed from."""
    if done.encoded is not None:  # from a worker, already encoded: as it is, but its declarations
        encoded = {k: v for k, v in done.encoded.items() if k != "declared"}
    else:
        encoded = encode(summary, declared=False)
    head = {
        "bytes": digests[done.name],
        "host_key": inputs.host_keys.get(done.name, "missing"),
        "data": done.data,
        "layers": list(done.layers),
        "site": layers.digest(list(done.layers)),
        "summary": encoded,
    }
    return _record(head, summary.declared.text)


def _record(head: dict[str, Any], declared: str) -> str:
    """A host's cache record (cache.Store.hosts): its entry as one line of JSON, a tab, and its
    declarations' stored form (summary.encode_items; decoded only when a fleet check needs
    them)."""
    return f"{json.dumps(head, separators=(',', ':'))}\t{declared}"


def _reusable(
    record: str | None, raw: bytes, digest: str, layers: _SiteLayers, host_key: str
) -> tuple[tuple[dict[str, Any], str], str] | None:
    """The cache entry (its head and declarations) and the record to keep, when the host's
    inputs are those it was computed from."""
    if record is None:
        return None
    head, tab, declared = record.partition("\t")
    if not tab:
        return None
    entry = json.loads(head)
    if not isinstance(entry, dict):
        return None
    roles = entry.get("layers")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return None
    if entry.get("site") != layers.digest(roles) or entry.get("host_key") != host_key:
        return None
    if entry.get("bytes") == digest:
        return (entry, declared), record
    # Another host.toml: the same data (a comment, spacing) gives the same result.
    try:
        table = parse_toml("", raw)
    except InventoryError:
        return None
    if entry.get("data") != data_digest(table):
        return None
    entry["bytes"] = digest
    return (entry, declared), _record(entry, declared)


def _decoded(name: str, file: str, entry: dict[str, Any], declared: str) -> HostSummary | None:
    try:
        return decode(name, file, entry.get("summary"), declared=declared)
    except BadSummaryError:
        return None


def _on_disk(root: Path, name: str, digest: str, recorded: str | None) -> tuple[bool, str]:
    """Whether the generated file on disk is exactly the one recorded, and its text. A file whose
    signature is the one recorded when it was last found so is not read (its text is not needed:
    nothing writes an unchanged file)."""
    # A plain string first: most files are known by their signature.
    if (
        recorded is not None
        and signature(f"{root}/{HOSTS_DIR}/{name}/{GENERATED_FILE}") == recorded
    ):
        return True, ""
    path = root / HOSTS_DIR / name / GENERATED_FILE
    if entry_kind(path) != "file":
        return False, ""
    try:
        data = path.read_bytes()
    except OSError:
        return False, ""
    if _sha(data) != digest:
        return False, ""
    try:
        return True, data.decode("utf-8")
    except UnicodeDecodeError:
        return False, ""


def _cached_site_problems(store: Store | None, digest: str) -> list[Problem] | None:
    """check_site's findings from the cache, while site.toml's bytes are the same."""
    cached = store.site if store is not None else None
    if isinstance(cached, dict) and cached.get("bytes") == digest:
        try:
            return [_problem(p) for p in cached["problems"]]
        except (KeyError, TypeError, ValueError):
            pass
    return None


def _check_site(site: Table, site_file: str) -> list[Problem]:
    from kvmfleet.site import check_site  # the models: only when needed

    return check_site(site, site_file)


def _problem_doc(p: Problem) -> list[Any]:
    return [p.file, list(p.path), p.message, p.severity.value]


def _problem(doc: Any) -> Problem:
    file, path, message, severity = doc
    if not (isinstance(file, str) and isinstance(message, str) and isinstance(path, list)):
        raise TypeError("problem")
    if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in path):
        raise TypeError("path")
    return Problem(file, tuple(path), message, Severity(severity))


def plan(outcome: Outcome, only: list[str] | None = None) -> list[Planned]:
    """What generate would write, for the named hosts or (None) the whole fleet incl. orphans."""
    root = outcome.root
    planned = []
    for name in outcome.hosts:
        if only is not None and name not in only:
            continue
        problem = outcome.render_problems.get(name)
        if problem is not None:
            raise InventoryError([problem])
        path = f"{HOSTS_DIR}/{name}/{GENERATED_FILE}"
        text = outcome.files[name]
        if name in outcome.unchanged:
            planned.append(Planned(path, Status.UNCHANGED, text))
        else:
            planned.append(classify(root, path, text))
    if outcome.sops is not None:
        # fleet-wide: written whatever hosts are named
        planned.append(classify(root, SOPS_CONFIG, outcome.sops))
    if only is None:
        for name in outcome.stray_dirs:
            path = f"{HOSTS_DIR}/{name}/{GENERATED_FILE}"
            if (root / path).exists():
                planned.append(classify_orphan(root, path))
    return planned
