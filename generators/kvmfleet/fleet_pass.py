"""The fleet-wide stage, from every host's summary: required keys located where the fix belongs,
the capabilities' fleet checks, and the decision whether anything may be written. Light imports:
a run whose hosts all come from the cache never loads the models."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from kvmfleet.fleet import FLEET_CHECKS, Declared
from kvmfleet.locate import broken_tables, locate_missing, merge_per_host, without_broken_site
from kvmfleet.problems import InventoryError, KeyPath, Problem, Severity, sort_problems
from kvmfleet.summary import HostSummary

# Per fleet check (in FLEET_CHECKS order): tag -> the group keys of every item with that tag.
KeysByTag = tuple[dict[str, list[str]], ...]


def gather_keys(summaries: Iterable[HostSummary], into: KeysByTag | None = None) -> KeysByTag:
    """The summaries' group keys, added to `into` (changed in place) if given."""
    gathered = into if into is not None else tuple({} for _ in FLEET_CHECKS)
    for summary in summaries:
        for number, tag, _, keys in summary.groups:
            gathered[number].setdefault(tag, []).extend(keys)
    return gathered


def settle(
    *,
    site: dict[str, Any],
    site_file: str,
    site_exists: bool,
    earlier: Sequence[Problem],
    site_problems: Sequence[Problem],
    summaries: Sequence[HostSummary],
    set_by_a_host: Callable[[], Collection[KeyPath]],
    gathered: tuple[KeysByTag, Collection[str]] | None = None,
) -> tuple[Problem, ...]:
    """The run's warnings, sorted; InventoryError with every problem if any is an error.
    `earlier`: what reading the files found (syntax errors, odd directories). `gathered`: the
    group keys of the named hosts' summaries, gathered earlier (while a worker computed the
    others); used as they are, and only when every host declares (site.toml exists)."""
    problems: list[Problem] = [*earlier, *site_problems]
    broken_site = broken_tables(site, site_problems)
    missing = locate_missing(
        [(s.name, s.file, without_broken_site(s.roles, s.missing, broken_site)) for s in summaries],
        site_file,
        site_exists,
        set_by_a_host,
    )
    # Without site.toml, hosts that lack its keys would only report more of the same.
    without_site = not site_exists and any(p.file == site_file for p in missing)
    problems.extend(missing)
    declaring: list[HostSummary] = []
    silent: list[HostSummary] = []
    for summary in summaries:
        problems.extend(summary.problems)
        if not (without_site and summary.missing):
            problems.extend(summary.findings)
            declaring.append(summary)
        problems.extend(summary.model_problems)
        if summary.silent:
            silent.append(summary)
    if gathered is not None and len(declaring) == len(summaries):
        earlier_keys, done = gathered
        keys = gather_keys((s for s in declaring if s.name not in done), into=earlier_keys)
    else:
        keys = gather_keys(declaring)
    problems.extend(fleet_checks(declaring, keys))
    if silent and not any(p.severity is Severity.ERROR and p.file == site_file for p in problems):
        # A safety net: an invalid host is never skipped without a word.
        problems.extend(
            Problem(
                s.file,
                (),
                "is invalid through a value it inherits from site.toml; see `kvmfleet show`",
            )
            for s in silent
        )
    problems = merge_per_host(problems)
    if any(p.severity is Severity.ERROR for p in problems):
        raise InventoryError(problems)
    return tuple(sort_problems(problems))


def fleet_checks(
    summaries: Sequence[HostSummary], gathered: KeysByTag | None = None
) -> list[Problem]:
    """Every FleetCheck, group by group. Keys are counted first (in C: most keys are one host's
    own value); only the members of groups that can hold a problem are gathered and read back
    from their summaries. `gathered`: the summaries' group keys (gather_keys), if known."""
    problems: list[Problem] = []
    gathered = gathered if gathered is not None else gather_keys(summaries)
    for number, check in enumerate(FLEET_CHECKS):
        by_tag = gathered[number]
        counted = {tag: Counter(tagged) for tag, tagged in by_tag.items()}
        # Keys met more than once: within a tag (looked for only when the tag has a repeat)
        # or across tags (set intersections, in C: a valid fleet's keys are nearly all unique).
        candidates: set[str] = set()
        for tag, keys_of_tag in counted.items():
            if check.alone(tag):
                candidates.update(keys_of_tag)
            elif len(keys_of_tag) < len(by_tag[tag]):
                candidates.update(key for key, count in keys_of_tag.items() if count > 1)
        tags = list(counted.values())
        for index, keys_of_tag in enumerate(tags):
            for other in tags[index + 1 :]:
                candidates.update(keys_of_tag.keys() & other.keys())
        relevant = {
            key
            for key in candidates
            if check.relevant({tag: c[key] for tag, c in counted.items() if key in c})
        }
        if not relevant:
            continue
        groups: dict[str, list[tuple[int, int, str]]] = {key: [] for key in relevant}
        for position, summary in enumerate(summaries):
            for n, tag, indices, group_keys in summary.groups:
                if n != number or relevant.isdisjoint(group_keys):
                    continue
                for index, key in zip(indices, group_keys, strict=True):
                    if key in groups:
                        groups[key].append((position, index, tag))
        for members in groups.values():
            members.sort()  # fleet order: hosts, then the order each declared its items
            declared: list[Declared[Any]] = [
                summaries[position].declared.items()[index] for position, index, _ in members
            ]
            problems.extend(check.check(declared))
    return problems
