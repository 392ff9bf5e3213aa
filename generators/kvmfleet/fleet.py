"""Checks across hosts: every identity (IP, MAC, IQN, GUID, ...) belongs to one place in the fleet.

Fleet-wide checks read only what each host declares (`DECLARATIONS`: the Capability hooks and the
type of what they yield), never a host's model: a host's declarations are part of its summary,
which the cache keeps per host, so that editing one host of a thousand re-checks the fleet from
summaries. A `FleetCheck` relates items that meet in a group (the same value, the same address):
`keys` names an item's groups, and only a group whose tags `relevant` accepts is looked at (and
only its members' declarations are read back from the cache).

To add a fleet-wide rule: a Capability hook yielding frozen dataclasses of plain data (str, int,
bool, None, tuples of those: the cache stores them as compressed JSON), an entry in
`DECLARATIONS`, and a
`FleetCheck` in `FLEET_CHECKS`."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from kvmfleet.capability import HOST_NAME, IP_ADDRESS, Identity, Peer
from kvmfleet.inventory import Layer
from kvmfleet.locate import locate_at
from kvmfleet.problems import Finding, Problem, format_keypath

T = TypeVar("T")

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
    # The tags of a group's members, each with how many members carry it -> whether the group
    # can hold a problem.
    relevant: Callable[[Mapping[str, int]], bool]
    # One relevant group's members, in fleet order (hosts, then the order they declared them).
    check: Callable[[Sequence[Declared[Any]]], Iterable[Problem]]
    # Whether an item with this tag may hold a problem alone in its group (else a group of one
    # is never looked at).
    alone: Callable[[str], bool] = lambda tag: False


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


def _noun(kind: str) -> str:
    return {IP_ADDRESS: "address", HOST_NAME: "name"}.get(kind, kind)


def peers_that_are_hosts(claims: Iterable[Claim], peers: Iterable[PeerClaim]) -> Iterator[Problem]:
    """A peer (gateway, name server, management server, monitor, portal, printer, target IQN,
    deployment target) that is a fleet host's own address, name or initiator name: a typo or a
    copied file, since fleet hosts are hypervisors and laptops, never those servers. Each peer says
    which identity kinds it is compared with, and whether its own host counts."""
    uses = list(peers)
    kinds = {kind for use in uses for kind in use.item.matches}
    owners: dict[tuple[str, str], list[Claim]] = {}
    for claim in claims:
        if claim.item.kind in kinds:
            key = (claim.item.kind, _key(claim.item.value))
            owners.setdefault(key, []).append(claim)
    by_role: dict[tuple[str, str], list[PeerClaim]] = {}
    for use in uses:
        by_role.setdefault((use.item.role, _key(use.item.address)), []).append(use)
    for use in uses:
        peer = use.item
        article = "an" if peer.role[:1].lower() in "aeiou" else "a"
        consequence = peer.consequence or f", which is not {article} {peer.role}"
        if peer.itself and _loopback(peer.address):
            finding = Finding(
                peer.path, f"{peer.role} {peer.address} is this host itself (loopback){consequence}"
            )
            yield use.problem(finding)
            continue
        found = False
        for kind in peer.matches:
            for owner in owners.get((kind, _key(peer.address)), []):
                where = format_keypath(owner.item.path)
                where = f" ({where})" if where else ""
                if owner.host == use.host:
                    if not peer.itself:
                        continue
                    whose = f"this host's own {_noun(kind)}"
                else:
                    whose = f"the {_noun(kind)} of fleet host {owner.host}"
                finding = Finding(
                    peer.path, f"{peer.role} {peer.address} is {whose}{where}{consequence}"
                )
                yield use.problem(finding)
                found = True
                break
            if found:
                break
        if found:
            continue
        for role in peer.not_roles:
            others = by_role.get((role, _key(peer.address)), [])
            if others:
                # its own host's first: that is the file to look at
                other = min(others, key=lambda o: o.host != use.host)
                whose = "" if other.host == use.host else f" of host {other.host}"
                finding = Finding(
                    peer.path,
                    f"{peer.role} {peer.address} is a {role}{whose} "
                    f"({format_keypath(other.item.path)}){consequence}",
                )
                yield use.problem(finding)
                break


@lru_cache(maxsize=1 << 16)  # every host names the same servers: each is judged once per run
def _loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, and the names every host gives itself."""
    name = _key(address)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _key(value: str) -> str:
    """Addresses and names compare without case; a DNS name's trailing dot is no difference."""
    return value.lower().rstrip(".")


def _where(other: Claim, this: Claim) -> str:
    path = format_keypath(other.item.path) + (", derived" if other.item.derived else "")
    if other.host == this.host:
        return path
    return f"{other.host} ({path})"


def _identity_keys(kind: str, item: Any) -> Iterator[tuple[str, str]]:
    if kind == "identities":
        yield f"{item.kind}\0{item.value.lower()}", ""


_SEP = "\x1f"


def _peer_keys(kind: str, item: Any) -> Iterator[tuple[str, str]]:
    """Owners and peers meet at an address or name (as `_key` compares them); a peer's tag says
    its role, the roles it may not be, and whether it is a loopback it may not be itself."""
    if kind == "identities":
        yield _key(item.value), "owner"
    elif kind == "peers":
        loop = "1" if item.itself and _loopback(item.address) else "0"
        yield _key(item.address), _SEP.join(["peer", loop, item.role, *item.not_roles])


def _peers_relevant(tags: Mapping[str, int]) -> bool:
    """Only which tags meet matters, not how often (a fleet's hosts share their time servers)."""
    peers = [tag.split(_SEP) for tag in tags if tag != "owner"]
    if any(p[1] == "1" for p in peers):
        return True
    if peers and "owner" in tags:
        return True  # an owner and a peer
    roles = {p[2] for p in peers}
    return any(role in roles for p in peers for role in p[3:])


def _of(members: Sequence[Declared[Any]], kind: str) -> list[Declared[Any]]:
    return [m for m in members if m.kind == kind]


FLEET_CHECKS: tuple[FleetCheck, ...] = (
    FleetCheck(
        "unique identities",
        _identity_keys,
        lambda tags: sum(tags.values()) > 1,
        duplicate_identities,
    ),
    FleetCheck(
        "peers that are fleet hosts",
        _peer_keys,
        _peers_relevant,
        lambda members: peers_that_are_hosts(_of(members, "identities"), _of(members, "peers")),
        alone=lambda tag: tag.startswith(f"peer{_SEP}1{_SEP}"),
    ),
)
