"""Host basics: identity, boot, disk, SSH, packages, sysctls, firewall, time servers."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import Field

from kvmfleet.model.types import (
    DomainName,
    HostOrAddress,
    IpNetwork,
    Model,
    PackageName,
    SecretFile,
    SshPublicKey,
    StateVersion,
    SysctlName,
    TimeZone,
    constrained,
    matching,
)
from kvmfleet.problems import quote

Role = Literal["hypervisor", "laptop"]
# The one list of roles: modules/base.nix's `kvmfleet.roles` enum must equal it (a test checks).
ROLES: tuple[str, ...] = typing.get_args(Role)


class HostSection(Model):
    """`[host]`: who the host is. The host name is its directory name under hosts/."""

    roles: list[Role] = Field(
        default=[], description="Roles; each selects [roles.<role>] of site.toml."
    )
    domain: DomainName | None = Field(default=None, description="DNS domain (networking.domain).")
    timezone: TimeZone = Field(default="UTC", description="tz database name (time.timeZone).")
    state_version: StateVersion = Field(
        description="NixOS release first installed on this host (system.stateVersion); never bump it."
    )
    system: Literal["x86_64-linux", "aarch64-linux"] = Field(
        default="x86_64-linux", description="nixpkgs.hostPlatform."
    )
    root_password_file: SecretFile | None = Field(
        default=None,
        description="File on the host with root's password hash (console login only; SSH stays key-only).",
    )
    max_guests: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Most guests the host runs at once (checks the 1024-port bridge limit).",
    )


Kernel = Annotated[
    str,
    matching(
        r"lts|latest|[0-9]+\.[0-9]+",
        'a kernel choice ("lts", "latest" or a series like "6.12")',
        '"lts", "latest" or "X.Y"',
    ),
]


class Boot(Model):
    """`[boot]`: boot loader and kernel."""

    loader: Literal["grub", "systemd-boot"] = Field(
        description='"grub" (BIOS; needs table "msdos" or a BIOS boot partition) or "systemd-boot" (UEFI, table "gpt").'
    )
    kernel: Kernel = Field(
        default="lts", description='"lts" (nixpkgs default), "latest", or a series such as "6.12".'
    )


class Ssh(Model):
    """`[ssh]`: root logs in by key only."""

    authorized_keys: list[SshPublicKey] = Field(
        default=[], description="Public keys allowed to log in as root."
    )


class Packages(Model):
    """`[packages]`: extra packages by nixpkgs attribute name."""

    extra: list[PackageName] = Field(
        default=[], description='nixpkgs attribute names, e.g. "wget".'
    )


class Firewall(Model):
    """`[firewall]`: always on unless explicitly disabled (with a warning)."""

    enable: bool = Field(default=True, description="Disabling is allowed but warned about.")
    trusted_networks: list[IpNetwork] = Field(
        default=[],
        description="Networks allowed to reach management services (SSH, libvirt, VNC, migration).",
    )


class Time(Model):
    """`[time]`: where servers set their clocks (systemd-timesyncd)."""

    servers: list[HostOrAddress] = Field(
        default=[],
        description="NTP servers for every host that is not a laptop (networking.timeServers, "
        "services.timesyncd.servers); "
        "empty: NixOS's public pool. Laptops keep the pool and the servers DHCP gives them.",
    )


def _sysctl_value(value: Any) -> int | str | bool:
    if isinstance(value, str) and (not value or value != value.strip()):
        # systemd-sysctl fails at boot on an empty value.
        raise ValueError(
            f"{quote(value)}: a sysctl value must not be empty or start or end with spaces"
        )
    if isinstance(value, bool | int | str):
        return value
    raise ValueError(f"expected an integer, a string or a boolean, got {quote(value)}")


SysctlValue = Annotated[Any, constrained("integer, string or boolean", _sysctl_value)]
Sysctls = dict[SysctlName, SysctlValue]
