"""Checks across hosts: every identity (IP, MAC, IQN, GUID, ...) belongs to one place in the fleet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kvmfleet.capability import Identity
from kvmfleet.inventory import HostInventory
from kvmfleet.locate import locate
from kvmfleet.problems import Finding, Problem, format_keypath


@dataclass(frozen=True)
class Claim:
    inventory: HostInventory
    identity: Identity


def duplicate_identities(claims: Iterable[Claim]) -> Iterator[Problem]:
    """One problem per use of a value that appears more than once (in one host or across hosts)."""
    by_value: dict[tuple[str, str], list[Claim]] = {}
    for claim in claims:
        by_value.setdefault((claim.identity.kind, claim.identity.value.lower()), []).append(claim)
    for (kind, _), uses in by_value.items():
        if len(uses) < 2:
            continue
        for claim in uses:
            others = ", ".join(_where(other, claim) for other in uses if other is not claim)
            finding = Finding(
                claim.identity.path, f"{kind} {claim.identity.value} is also used by {others}"
            )
            yield locate(claim.inventory, finding)


def _where(other: Claim, this: Claim) -> str:
    path = format_keypath(other.identity.path)
    if other.inventory.name == this.inventory.name:
        return path
    return f"{other.inventory.name} ({path})"
