"""Checks across hosts: every identity (IP, MAC, IQN, GUID, ...) belongs to one place in the fleet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kvmfleet.capability import Identity, Peer
from kvmfleet.inventory import HostInventory
from kvmfleet.locate import locate
from kvmfleet.problems import Finding, Problem, format_keypath

# The identity kind every capability uses for a host's own IP addresses.
IP_ADDRESS = "IP address"


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
            own = (
                " (derived by kvmfleet; set hwaddress to choose one)"
                if claim.identity.derived
                else ""
            )
            finding = Finding(
                claim.identity.path, f"{kind} {claim.identity.value}{own} is also used by {others}"
            )
            yield locate(claim.inventory, finding)


@dataclass(frozen=True)
class PeerClaim:
    inventory: HostInventory
    peer: Peer


def peers_that_are_hosts(claims: Iterable[Claim], peers: Iterable[PeerClaim]) -> Iterator[Problem]:
    """A gateway, name server or management server that is another fleet host's own address: a
    typo or a copied file, since fleet hosts are hypervisors and laptops, never those servers."""
    owners: dict[str, list[Claim]] = {}
    for claim in claims:
        if claim.identity.kind == IP_ADDRESS:
            owners.setdefault(claim.identity.value.lower(), []).append(claim)
    for use in peers:
        for owner in owners.get(use.peer.address.lower(), []):
            if owner.inventory.name == use.inventory.name:
                continue
            consequence = use.peer.consequence or f", which is not a {use.peer.role}"
            finding = Finding(
                use.peer.path,
                f"{use.peer.role} {use.peer.address} is the address of fleet host "
                f"{owner.inventory.name} ({format_keypath(owner.identity.path)}){consequence}",
            )
            yield locate(use.inventory, finding)


def _where(other: Claim, this: Claim) -> str:
    path = format_keypath(other.identity.path) + (", derived" if other.identity.derived else "")
    if other.inventory.name == this.inventory.name:
        return path
    return f"{other.inventory.name} ({path})"
