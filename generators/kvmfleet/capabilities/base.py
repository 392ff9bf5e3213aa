"""Host basics: identity, time zone and NTP servers, release, boot loader, kernel, SSH keys,
packages, sysctls, firewall, rescue access. Options that need `pkgs` are set on modules/base.nix.
The disk, its partitions and file systems belong to the install capability."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kvmfleet.capability import (
    HOST_NAME,
    Capability,
    HostContext,
    Identity,
    Peer,
    PortUse,
    SecretFile,
    Settings,
)
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
    if host.time.servers and not _is_laptop(ctx):
        # Ceph and CloudStack need the hosts' clocks in step: the site's servers, not the pool.
        # networking.timeServers is what chrony or ntpd would use, but only timesyncd's
        # FallbackNTP= (used while no other server is known, e.g. none from DHCP); `servers` makes
        # them its NTP= servers.
        out["networking"]["timeServers"] = list(host.time.servers)
        out["services"] = {"timesyncd": {"servers": list(host.time.servers)}}
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


def _is_laptop(ctx: HostContext) -> bool:
    # A laptop roams: site-internal servers are often out of reach from where it is.
    return "laptop" in ctx.host.host.roles


def findings(ctx: HostContext) -> Iterator[Finding]:
    host = ctx.host
    if "hypervisor" in host.host.roles:
        yield from _hypervisor_findings(ctx)
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
    for index, network in enumerate(host.firewall.trusted_networks):
        if network.endswith("/0"):
            # As open as an empty list, which the capabilities that open ports warn about.
            yield warning(
                ("firewall", "trusted_networks", index),
                f"{network} trusts every IPv{6 if ':' in network else 4} address: SSH and the "
                "management ports are open to all, as with no trusted_networks; list the management "
                "networks",
            )


def _hypervisor_findings(ctx: HostContext) -> Iterator[Finding]:
    host = ctx.host
    if host.host.root_password_file is None:
        yield warning(
            ("host", "root_password_file"),
            "not set: root has no password, so when a switch breaks networking nobody can log in "
            "at the console or in the emergency shell; the way back is then the previous "
            "generation in the boot menu",
        )
    if not host.time.servers:
        yield warning(
            ("time", "servers"),
            "not set: the hypervisor sets its clock from the public NTP pool; Ceph and CloudStack "
            "need the hosts' clocks in step, so give the site's NTP servers (e.g. in site.toml)",
        )


def peers(ctx: HostContext) -> Iterator[Peer]:
    for index, server in enumerate(ctx.host.time.servers):
        # timesyncd is a client only: the host itself serves no time either.
        yield Peer("time server", server, ("time", "servers", index), itself=True)


def identities(ctx: HostContext) -> Iterator[Identity]:
    """The host's names, bare and fully qualified: what a peer (a deployment target, a management
    server, a time server) must not name. Unique by construction (one directory per host)."""
    yield Identity(HOST_NAME, ctx.name, (), derived=True)
    if ctx.host.host.domain is not None:
        fqdn = f"{ctx.name}.{ctx.host.host.domain}"
        yield Identity(HOST_NAME, fqdn, ("host", "domain"), derived=True)


def ports(ctx: HostContext) -> Iterator[PortUse]:
    # services.openssh's defaults (modules/base.nix keeps them): port 22 on every address.
    yield PortUse("sshd", "tcp", 22, 22, ("0.0.0.0", "::"), ("ssh",))


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


def secret_files(ctx: HostContext) -> Iterator[SecretFile]:
    file = ctx.host.host.root_password_file
    if file is not None:
        yield SecretFile(
            ("host", "root_password_file"),
            file,
            "NixOS's user activation (root's hashedPasswordFile)",
            before_users=True,
        )


CAPABILITY = Capability(
    "base",
    ("host", "boot", "ssh", "packages", "sysctl", "firewall", "time"),
    settings,
    findings,
    identities,
    pitfalls=pitfalls,
    peers=peers,
    secret_files=secret_files,
    ports=ports,
)
