"""Checks across hosts: every identity (IP, MAC, IQN, GUID, ...) belongs to one place in the fleet."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kvmfleet.capability import HOST_NAME, IP_ADDRESS, Identity, Peer
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


def _noun(kind: str) -> str:
    return {IP_ADDRESS: "address", HOST_NAME: "name"}.get(kind, kind)


def peers_that_are_hosts(claims: Iterable[Claim], peers: Iterable[PeerClaim]) -> Iterator[Problem]:
    """A peer (gateway, name server, management server, monitor, portal, printer, target IQN,
    deployment target) that is a fleet host's own address, name or initiator name: a typo or a
    copied file, since fleet hosts are hypervisors and laptops, never those servers. Each peer says
    which identity kinds it is compared with, and whether its own host counts."""
    uses = list(peers)
    kinds = {kind for use in uses for kind in use.peer.matches}
    owners: dict[tuple[str, str], list[Claim]] = {}
    for claim in claims:
        if claim.identity.kind in kinds:
            key = (claim.identity.kind, _key(claim.identity.value))
            owners.setdefault(key, []).append(claim)
    by_role: dict[tuple[str, str], list[PeerClaim]] = {}
    for use in uses:
        by_role.setdefault((use.peer.role, _key(use.peer.address)), []).append(use)
    for use in uses:
        peer = use.peer
        article = "an" if peer.role[:1].lower() in "aeiou" else "a"
        consequence = peer.consequence or f", which is not {article} {peer.role}"
        if peer.itself and _loopback(peer.address):
            finding = Finding(
                peer.path, f"{peer.role} {peer.address} is this host itself (loopback){consequence}"
            )
            yield locate(use.inventory, finding)
            continue
        found = False
        for kind in peer.matches:
            for owner in owners.get((kind, _key(peer.address)), []):
                where = format_keypath(owner.identity.path)
                where = f" ({where})" if where else ""
                if owner.inventory.name == use.inventory.name:
                    if not peer.itself:
                        continue
                    whose = f"this host's own {_noun(kind)}"
                else:
                    whose = f"the {_noun(kind)} of fleet host {owner.inventory.name}"
                finding = Finding(
                    peer.path, f"{peer.role} {peer.address} is {whose}{where}{consequence}"
                )
                yield locate(use.inventory, finding)
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
                other = min(others, key=lambda o: o.inventory.name != use.inventory.name)
                whose = (
                    ""
                    if other.inventory.name == use.inventory.name
                    else f" of host {other.inventory.name}"
                )
                finding = Finding(
                    peer.path,
                    f"{peer.role} {peer.address} is a {role}{whose} "
                    f"({format_keypath(other.peer.path)}){consequence}",
                )
                yield locate(use.inventory, finding)
                break


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
    path = format_keypath(other.identity.path) + (", derived" if other.identity.derived else "")
    if other.inventory.name == this.inventory.name:
        return path
    return f"{other.inventory.name} ({path})"
