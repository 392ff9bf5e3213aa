"""What a capability is: host model -> findings, fleet-unique identities, NixOS settings (plain data)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kvmfleet.model import Host
from kvmfleet.problems import Finding, KeyPath

Settings = dict[str, Any]


@dataclass(frozen=True)
class HostContext:
    name: str
    host: Host


@dataclass(frozen=True)
class Identity:
    """A value that must be unique across the fleet (an IP, a MAC, an IQN, a GUID)."""

    kind: str
    value: str
    path: KeyPath


def _no_findings(ctx: HostContext) -> Iterable[Finding]:
    return ()


def _no_identities(ctx: HostContext) -> Iterable[Identity]:
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


def merge_settings(
    target: Settings, addition: Settings, owner: str, path: tuple[str, ...] = ()
) -> None:
    """Deep-merge one capability's settings into the host's; two capabilities setting the same
    option is a bug in kvmfleet, not in the inventory."""
    for key, value in addition.items():
        here = (*path, key)
        if key not in target:
            target[key] = value
        elif isinstance(target[key], dict) and isinstance(value, dict):
            merge_settings(target[key], value, owner, here)
        else:
            raise RuntimeError(
                f"capability {owner} sets {'.'.join(here)}, which another capability already set"
            )
