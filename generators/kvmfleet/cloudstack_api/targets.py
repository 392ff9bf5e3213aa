"""The inventory side: hosts with `[cloudstack]`, how to reach their management server, and how
CloudStack knows them (the management address, the host name)."""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_interface
from pathlib import Path

from kvmfleet.capabilities.cloudstack import add_host_address
from kvmfleet.capabilities.install import target_host
from kvmfleet.capability import HostContext
from kvmfleet.cloudstack_api.client import Client, Credentials
from kvmfleet.generate import Fleet
from kvmfleet.model import Host
from kvmfleet.model.cloudstack import CloudStack
from kvmfleet.model.cloudstack_api import CloudStackApi
from kvmfleet.model.network import Layer3


class CommandError(Exception):
    """A problem that stops a `kvmfleet cloudstack` command: one line, exit 2."""


@dataclass(frozen=True)
class Target:
    name: str
    host: Host
    cs: CloudStack
    api: CloudStackApi
    addresses: tuple[str, ...]  # of the private NIC, without prefix length

    @property
    def fqdn(self) -> str | None:
        domain = self.host.host.domain
        return f"{self.name}.{domain}" if domain else None

    @property
    def address(self) -> str:
        """What CloudStack and the deploy step reach the host at: the address Add Host is given
        (`cloudstack.add_host_address`, by default the private NIC's first IPv4 address; the
        agent's GUID derives from it), else the host's DNS name."""
        return add_host_address(self.host, self.cs) or self.fqdn or self.name

    @property
    def ssh_target(self) -> str:
        """Where the deploy step connects: `[deploy] target_host` or its default, as colmena's
        targetHost is generated."""
        return target_host(HostContext(self.name, self.host))

    def names(self) -> set[str]:
        return {self.name, *([self.fqdn] if self.fqdn else [])}


def _layer3(host: Host, nic: str) -> Layer3 | None:
    net = host.network
    for table in (net.bridges, net.bonds, net.vlans, net.interfaces):
        if nic in table:
            found: Layer3 = table[nic]
            return found
    return None


def _target(name: str, host: Host) -> Target | None:
    cs = host.cloudstack
    if cs is None:
        return None
    if cs.api is None:
        raise CommandError(
            f"{name}: cloudstack.api is not set: kvmfleet needs the API URL and the key files "
            "([cloudstack.api], usually under [roles.hypervisor.cloudstack.api] in site.toml)"
        )
    layer = _layer3(host, cs.private_nic)
    addresses = tuple(str(ip_interface(a).ip) for a in layer.addresses) if layer else ()
    if cs.add_host_address and cs.add_host_address not in addresses:
        addresses += (cs.add_host_address,)
    return Target(name, host, cs, cs.api, addresses)


def targets(fleet: Fleet, names: list[str] | None = None) -> list[Target]:
    """The named hosts (each must have `[cloudstack]`), or every host that has it."""
    by_name = {r.name: r.host for r in fleet.hosts}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise CommandError(f"no such host in the inventory: {', '.join(unknown)}")
        missing = [n for n in names if by_name[n].cloudstack is None]
        if missing:
            raise CommandError(
                f"{', '.join(missing)}: no [cloudstack] table (not a CloudStack host)"
            )
    found = []
    for name in names or sorted(by_name):
        target = _target(name, by_name[name])
        if target is not None:
            found.append(target)
    return found


def _read_key(path: str, key: str) -> str:
    where = f"cloudstack.api.{key}"
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise CommandError(f"{where}: {path} is not a regular file")
        text = Path(path).read_text(encoding="utf-8")
    except CommandError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise CommandError(f"{where}: cannot read {path}: {reason}") from None
    if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"warning: {where}: {path} is readable by other users (chmod 600 {path})",
            file=sys.stderr,
        )
    value = text.strip()
    if not value or any(ch.isspace() for ch in value):
        raise CommandError(f"{where}: {path} must hold the key alone, on one line")
    return value


def credentials(api: CloudStackApi) -> Credentials:
    return Credentials(
        _read_key(api.api_key_file, "api_key_file"),
        _read_key(api.secret_key_file, "secret_key_file"),
    )


def read_password(api: CloudStackApi) -> str:
    if api.password_file is None:
        raise CommandError(
            "--password needs cloudstack.api.password_file (a file holding root's password)"
        )
    try:
        return Path(api.password_file).read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError):
        raise CommandError(
            f"cloudstack.api.password_file: cannot read {api.password_file}"
        ) from None


class Clients:
    """One client per API endpoint and key pair."""

    def __init__(self, make: Callable[[str, Credentials], Client] = Client) -> None:
        self._make = make
        self._clients: dict[tuple[str, str, str], Client] = {}

    def for_api(self, api: CloudStackApi) -> Client:
        key = (api.url, api.api_key_file, api.secret_key_file)
        if key not in self._clients:
            self._clients[key] = self._make(api.url, credentials(api))
        return self._clients[key]


def version_matches(agent: str, wanted: str) -> bool:
    """The agent reports e.g. "4.22.0.0"; the inventory says "4.22" or "4.22.0"."""
    return agent == wanted or agent.startswith(wanted + ".")
