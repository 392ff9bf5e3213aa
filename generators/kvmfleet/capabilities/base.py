"""Host basics: identity, time, release, boot loader, kernel, SSH keys, packages, sysctls,
firewall. Options that need `pkgs` are set on modules/base.nix. The disk, its partitions and file
systems belong to the install capability."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kvmfleet.capability import Capability, HostContext, Settings
from kvmfleet.problems import Finding, error, warning


def settings(ctx: HostContext) -> Settings:
    host = ctx.host
    out: Settings = {
        "networking": {"hostName": ctx.name},
        "time": {"timeZone": host.host.timezone},
        "system": {"stateVersion": host.host.state_version},
        "nixpkgs": {"hostPlatform": host.host.system},
        "boot": _boot(ctx),
        "users": {
            "users": {
                "root": {"openssh": {"authorizedKeys": {"keys": list(host.ssh.authorized_keys)}}}
            }
        },
        "kvmfleet": {
            "roles": list(host.host.roles),
            "kernel": host.boot.kernel,
            "extraPackages": list(host.packages.extra),
            "firewall": {"trustedNetworks": list(host.firewall.trusted_networks)},
        },
    }
    if host.host.root_password_file is not None:
        out["users"]["users"]["root"]["hashedPasswordFile"] = host.host.root_password_file
    if host.host.domain is not None:
        out["networking"]["domain"] = host.host.domain
    if not host.firewall.enable:
        out["networking"]["firewall"] = {"enable": False}
    return out


def _boot(ctx: HostContext) -> Settings:
    host = ctx.host
    boot: Settings = {}
    if host.boot.loader == "grub":
        # The disk it installs to comes with the disk layout (install capability).
        boot["loader"] = {"grub": {"enable": True}}
    else:
        boot["loader"] = {"systemd-boot": {"enable": True}, "efi": {"canTouchEfiVariables": True}}
    if host.sysctl:
        boot["kernel"] = {"sysctl": dict(sorted(host.sysctl.items()))}
    return boot


def findings(ctx: HostContext) -> Iterator[Finding]:
    host = ctx.host
    if host.boot.loader == "grub" and host.host.system != "x86_64-linux":
        # nixpkgs builds GRUB's BIOS target (grub.devices) for x86 only.
        yield error(
            ("boot", "loader"),
            f'GRUB on a BIOS disk needs an x86_64 host; {host.host.system} boots by UEFI: use "systemd-boot"',
        )
    # Only [ssh] keys reach root today ([cloudstack] keys come with that capability).
    if not host.ssh.authorized_keys:
        yield error(
            ("ssh", "authorized_keys"),
            "needs at least one key: root logs in by SSH key only, passwords are off",
        )
    if not host.firewall.enable:
        yield warning(
            ("firewall", "enable"),
            "the firewall is off: every listening service is reachable from everywhere",
        )
    if len(set(host.host.roles)) != len(host.host.roles):
        yield error(("host", "roles"), "lists a role twice")


def pitfalls(layer: Mapping[str, Any]) -> Iterator[Finding]:
    sysctl = layer.get("sysctl")
    if isinstance(sysctl, dict):
        for key, value in sysctl.items():
            if isinstance(value, dict):
                yield error(
                    ("sysctl", key),
                    'a sysctl name with dots must be quoted, e.g. "net.ipv4.tcp_retries2" = 8 '
                    "(unquoted, TOML reads the dots as nested tables)",
                )


CAPABILITY = Capability(
    "base",
    ("host", "boot", "ssh", "packages", "sysctl", "firewall"),
    settings,
    findings,
    pitfalls=pitfalls,
)
