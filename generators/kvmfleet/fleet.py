"""Checks across hosts: every identity (IP, MAC, IQN, GUID, ...) belongs to one place in the fleet.

Fleet-wide checks read only what each host declares (`DECLARATIONS`: the Capability hooks and the
type of what they yield), never a host's model: a host's declarations are part of its summary,
which the cache keeps per host, so that editing one host of a thousand re-checks the fleet from
summaries. A `FleetCheck` relates items that meet in a group (the same value, the same address):
`keys` names an item's groups, and only a group whose tags `relevant` accepts is looked at (and
only its members' declarations are read back from the cache).

To add a fleet-wide rule: a Capability hook yielding frozen dataclasses of plain data (str, int,
bool, None, tuples of those: the cache stores them as JSON), an entry in `DECLARATIONS`, and a
`FleetCheck` in `FLEET_CHECKS`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kvmfleet.capability import Identity, Peer
from kvmfleet.inventory import Layer
from kvmfleet.locate import locate_at
from kvmfleet.problems import Finding, Problem, format_keypath

T = TypeVar("T")

# The identity kind every capability uses for a host's own IP addresses.
IP_ADDRESS = "IP address"

# Capability hook -> the type of the items it yields.
DECLARATIONS: dict[str, type[Any]] = {"identities": Identity, "peers": Peer}


@dataclass(frozen=True)
class Declared(Generic[T]):
    """One item a host declares for fleet-wide checks, with the layer that writes `item.path`."""

    host: str
    file: str  # the host's own file
    where: Layer
    kind: str  # its DECLARATIONS hook
    item: T

    def problem(self, finding: Finding) -> Problem:
        """`finding` (about this item's path) located as `locate` would."""
        return locate_at(self.host, self.file, self.where, finding)


Claim = Declared[Identity]
PeerClaim = Declared[Peer]


@dataclass(frozen=True)
class FleetCheck:
    """A rule over the declarations of the whole fleet, checked group by group."""

    name: str
    # (hook, item) -> the groups the item joins, each as (key, tag).
    keys: Callable[[str, Any], Iterable[tuple[str, str]]]
    # The tags of a group's members -> whether the group can hold a problem.
    relevant: Callable[[Sequence[str]], bool]
    # One relevant group's members, in fleet order (hosts, then the order they declared them).
    check: Callable[[Sequence[Declared[Any]]], Iterable[Problem]]


def duplicate_identities(claims: Iterable[Claim]) -> Iterator[Problem]:
    """One problem per use of a value that appears more than once (in one host or across hosts)."""
    by_value: dict[tuple[str, str], list[Claim]] = {}
    for claim in claims:
        by_value.setdefault((claim.item.kind, claim.item.value.lower()), []).append(claim)
    for (kind, _), uses in by_value.items():
        if len(uses) < 2:
            continue
        for claim in uses:
            others = ", ".join(_where(other, claim) for other in uses if other is not claim)
            own = (
                " (derived by kvmfleet; set hwaddress to choose one)" if claim.item.derived else ""
            )
            finding = Finding(
                claim.item.path, f"{kind} {claim.item.value}{own} is also used by {others}"
            )
            yield claim.problem(finding)


def peers_that_are_hosts(claims: Iterable[Claim], peers: Iterable[PeerClaim]) -> Iterator[Problem]:
    """A gateway, name server or management server that is another fleet host's own address: a
    typo or a copied file, since fleet hosts are hypervisors and laptops, never those servers."""
    owners: dict[str, list[Claim]] = {}
    for claim in claims:
        if claim.item.kind == IP_ADDRESS:
            owners.setdefault(claim.item.value.lower(), []).append(claim)
    for use in peers:
        for owner in owners.get(use.item.address.lower(), []):
            if owner.host == use.host:
                continue
            consequence = use.item.consequence or f", which is not a {use.item.role}"
            finding = Finding(
                use.item.path,
                f"{use.item.role} {use.item.address} is the address of fleet host "
                f"{owner.host} ({format_keypath(owner.item.path)}){consequence}",
            )
            yield use.problem(finding)


def _where(other: Claim, this: Claim) -> str:
    path = format_keypath(other.item.path) + (", derived" if other.item.derived else "")
    if other.host == this.host:
        return path
    return f"{other.host} ({path})"


def _identity_keys(kind: str, item: Any) -> Iterator[tuple[str, str]]:
    if kind == "identities":
        yield f"{item.kind}\0{item.value.lower()}", ""


def _peer_keys(kind: str, item: Any) -> Iterator[tuple[str, str]]:
    if kind == "identities" and item.kind == IP_ADDRESS:
        yield item.value.lower(), "owner"
    elif kind == "peers":
        yield item.address.lower(), "peer"


def _of(members: Sequence[Declared[Any]], kind: str) -> list[Declared[Any]]:
    return [m for m in members if m.kind == kind]


FLEET_CHECKS: tuple[FleetCheck, ...] = (
    FleetCheck(
        "unique identities",
        _identity_keys,
        lambda tags: len(tags) > 1,
        duplicate_identities,
    ),
    FleetCheck(
        "peers that are fleet hosts",
        _peer_keys,
        lambda tags: "owner" in tags and "peer" in tags,
        lambda members: peers_that_are_hosts(_of(members, "identities"), _of(members, "peers")),
    ),
)
