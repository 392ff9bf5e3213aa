"""What a capability is: one column through the tree, from inventory tables to NixOS settings.

A capability declares the `Host` fields it owns and maps a validated host to
- `settings`: NixOS option values (plain data), merged with every other capability's;
- `findings`: errors and warnings about the host (`kvmfleet.problems.error` / `warning`);
- `identities`: values that must be unique in the fleet, and how `new --like` renews them;
- `pitfalls`: findings on one raw TOML layer, for mistakes whose type error would not say what
  to do (run on site.toml's top level, each of its role tables and each host file);
- `secret_files`: the secret files the host reads, with who reads them (checks and provisioning
  read these declarations, never a list of keys kept elsewhere);
- `service_users`: the system users its NixOS services define (no `[users]` entry may take them);
- `peers`: what the host relies on as someone else (a gateway, a monitor, a target's IQN): no
  fleet host may be it;
- `ports`: the ports its services listen on, and where (one check per host compares them);
- `host_values`: values of one machine that need not be unique, renewed by `new --like`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmfleet.problems import Finding, KeyPath

if TYPE_CHECKING:  # fleet checks read these types without loading the models
    from kvmfleet.model import Host

Settings = dict[str, Any]


class Drop:
    """What a Renew returns to delete the key from the new host's file: its value then defaults
    to one derived for the new host (a CloudStack GUID from its address)."""


DROP = Drop()

# (the host a file is copied from, the new host's name) -> a fresh value, None to leave it empty
# for the administrator, or DROP to delete the key.
Renew = Callable[[str, str], str | Drop | None]


@dataclass(frozen=True)
class HostContext:
    name: str
    host: Host
    # hosts/<name>/ssh_host_ed25519_key.pub's line: the host decrypts its secrets with this key.
    host_key: str | None = None


def must_choose(like: str, name: str) -> str | Drop | None:
    """The administrator picks the new value (an address, a NIC's MAC)."""
    return None


@dataclass(frozen=True)
class Identity:
    """A value that must be unique across the fleet (an IP, a MAC, an IQN, a GUID). `renew` says
    what `kvmfleet new NAME --like OTHER` writes in its place."""

    kind: str
    value: str
    path: KeyPath
    renew: Renew = field(default=must_choose, compare=False)
    # Computed by kvmfleet (a derived MAC), not written in the inventory: `new` has nothing to
    # renew, `path` names the table it belongs to.
    derived: bool = field(default=False, compare=False)


# Identity kinds the fleet checks compare peers with: a host's own IP addresses (the network
# capability) and its names, bare and fully qualified (the base capability).
IP_ADDRESS = "IP address"
HOST_NAME = "host name"


@dataclass(frozen=True)
class HostValue:
    """A value that belongs to one machine without having to be unique in the fleet (the
    by-id name of its system disk): `kvmfleet new NAME --like OTHER` writes `renew`'s value in
    its place (by default it empties it for the administrator), as it does for an Identity."""

    value: str
    path: KeyPath
    renew: Renew = field(default=must_choose, compare=False)


@dataclass(frozen=True)
class Peer:
    """An address this host relies on as someone else (a gateway, a name server, a management
    server, a Ceph monitor, an iSCSI target): no host of the fleet may be it, that is, have it as
    one of its identities of the kinds in `matches` (by default its IP addresses and names)."""

    role: str
    address: str
    path: KeyPath
    # What goes wrong when it is one (default: that host is no `role`).
    consequence: str = ""
    matches: tuple[str, ...] = (IP_ADDRESS, HOST_NAME)
    # Whether this host itself is no such peer either (a management server, a monitor); False
    # where the host itself is what is meant (a deployment target).
    itself: bool = False
    # Roles of other peers (of any host) this one may not be: a deployment target that is a
    # management server would install a hypervisor's system on it.
    not_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortUse:
    """A port (or an inclusive range) a service of the host listens on. `addresses` are where it
    listens: "0.0.0.0" or "::" for every address (counted as every address of both families, as a
    dual-stack socket binds both), otherwise the addresses themselves; `path` is the key that
    chooses the port or the addresses (the table for a fixed one)."""

    service: str
    protocol: str  # "tcp" or "udp"
    first: int
    last: int
    addresses: tuple[str, ...]
    path: KeyPath
    # The inventory list `addresses` come from, when they do (then each must be the host's own,
    # a wildcard or loopback); None for fixed or derived ones (CUPS's loopback, libvirt's bridge).
    listen_path: KeyPath | None = None


@dataclass(frozen=True)
class SecretFile:
    """A secret file the host reads, named by an inventory key, with what its consumer needs:
    owner, group and mode of the file, and whether it is read while users are created (password
    hashes: before any service, and before file systems other than those needed for boot)."""

    path: KeyPath
    file: str
    reader: str  # who reads it, for messages ("mount.ceph and librados")
    owner: str = "root"
    group: str = "root"
    mode: str = "0400"
    before_users: bool = False


def _no_findings(ctx: HostContext) -> Iterable[Finding]:
    return ()


def _no_identities(ctx: HostContext) -> Iterable[Identity]:
    return ()


def _no_pitfalls(layer: Mapping[str, Any]) -> Iterable[Finding]:
    return ()


def _no_peers(ctx: HostContext) -> Iterable[Peer]:
    return ()


def _no_secret_files(ctx: HostContext) -> Iterable[SecretFile]:
    return ()


def _no_ports(ctx: HostContext) -> Iterable[PortUse]:
    return ()


def _no_host_values(ctx: HostContext) -> Iterable[HostValue]:
    return ()


@dataclass(frozen=True)
class Capability:
    """One column through the tree. `settings` is None while the capability's tables are validated
    but not yet translated into NixOS settings (generate then warns that they have no effect)."""

    name: str
    tables: tuple[str, ...]
    settings: Callable[[HostContext], Settings] | None
    findings: Callable[[HostContext], Iterable[Finding]] = field(default=_no_findings)
    identities: Callable[[HostContext], Iterable[Identity]] = field(default=_no_identities)
    pitfalls: Callable[[Mapping[str, Any]], Iterable[Finding]] = field(default=_no_pitfalls)
    peers: Callable[[HostContext], Iterable[Peer]] = field(default=_no_peers)
    secret_files: Callable[[HostContext], Iterable[SecretFile]] = field(default=_no_secret_files)
    service_users: frozenset[str] = frozenset()
    host_values: Callable[[HostContext], Iterable[HostValue]] = field(default=_no_host_values)
    ports: Callable[[HostContext], Iterable[PortUse]] = field(default=_no_ports)


def merge_settings(
    target: Settings, addition: Mapping[str, Any], owner: str, path: tuple[str, ...] = ()
) -> None:
    """Merge one capability's settings into the host's (in place), as the NixOS module system
    would: attribute sets merge recursively, lists concatenate (items already there are dropped),
    equal values agree. Two different values for one option is a bug in kvmfleet, not in the
    inventory: RuntimeError."""
    for key, value in addition.items():
        here = (*path, key)
        if key not in target:
            target[key] = _copy(value)
            continue
        current = target[key]
        if isinstance(current, dict) and isinstance(value, dict):
            merge_settings(current, value, owner, here)
        elif isinstance(current, list) and isinstance(value, list):
            for item in value:
                if item not in current:
                    current.append(_copy(item))
        elif type(current) is not type(value) or current != value:
            raise RuntimeError(
                f"capability {owner} sets {'.'.join(here)} = {value!r}, "
                f"which another capability already set to {current!r}"
            )


def _copy(value: Any) -> Any:
    """A copy of settings data (dicts, lists, scalars): the merged result never shares a dict or
    list with what a capability returned, which may be a constant it returns for every host."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    # Scalar children are taken as they are, without a call each: most of a host's settings.
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else _copy(v) for v in value]
    if isinstance(value, dict | list):  # subclasses: rare, take the general way
        return copy.deepcopy(value)
    return value


_SCALARS = frozenset({str, int, bool, type(None)})
