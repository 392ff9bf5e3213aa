"""Install and rollout: `[disk]` -> the host's disko layout (disko owns its file systems, swap
and LUKS device), `[deploy]` -> where and under which tags colmena deploys it.

Layouts, by table and boot loader (disko's types: lib/types/{gpt,table}.nix):
- gpt + GRUB (BIOS): a 1 MiB BIOS boot partition (EF02; disko then sets boot.loader.grub.devices);
- gpt + systemd-boot (UEFI): a 1 GiB ESP on /boot;
- msdos + GRUB (BIOS): disko's legacy "table" type; it sets no grub.devices, so they are set here.
Then optional swap, then the root file system on the rest (inside LUKS when encrypted). On gpt
partitions are mounted by partition label, on a legacy msdos table by device name."""

from __future__ import annotations

import re
from collections.abc import Iterator

from kvmfleet.capability import Capability, HostContext, HostValue, Identity, Peer, Settings
from kvmfleet.model.install import disk_identity, swap_mib
from kvmfleet.problems import Finding, error, warning

DISK = "main"  # disko's name for the system disk: partition labels are disk-main-<partition>
LUKS_NAME = "cryptroot"  # /dev/mapper/cryptroot
ESP_SIZE = "1G"
# The ESP holds the boot loader's random seed: keep it private.
ESP_OPTIONS = ["fmask=0077", "dmask=0077"]


def settings(ctx: HostContext) -> Settings:
    host = ctx.host
    out: Settings = {
        "disko": {
            "devices": {
                "disk": {DISK: {"type": "disk", "device": host.disk.device, "content": layout(ctx)}}
            }
        },
        "kvmfleet": {"deploy": deploy(ctx)},
    }
    if host.boot.loader == "grub" and host.disk.table == "msdos":
        out["boot"] = {"loader": {"grub": {"devices": [host.disk.device]}}}
    return out


def layout(ctx: HostContext) -> Settings:
    """The `content` of the system disk in disko's terms."""
    disk = ctx.host.disk
    root: Settings = {"type": "filesystem", "format": disk.filesystem, "mountpoint": "/"}
    if disk.encrypt:
        # askPassword (disko's default without a key file): asked when formatting and at boot.
        root = {
            "type": "luks",
            "name": LUKS_NAME,
            "settings": {"allowDiscards": True},
            "content": root,
        }
    # Swap beside an encrypted root gets a new random key at every boot (no hibernation).
    swap: Settings = (
        {"type": "swap", "randomEncryption": True} if disk.encrypt else {"type": "swap"}
    )
    if disk.table == "msdos":
        return _msdos(ctx, root, swap)
    partitions: Settings = {}
    if ctx.host.boot.loader == "grub":
        partitions["boot"] = {"size": "1M", "type": "EF02"}
    else:
        partitions["ESP"] = {
            "size": ESP_SIZE,
            "type": "EF00",
            "content": {
                "type": "filesystem",
                "format": "vfat",
                "mountpoint": "/boot",
                "mountOptions": list(ESP_OPTIONS),
            },
        }
    if disk.swap is not None:
        partitions["swap"] = {"size": f"{swap_mib(disk.swap)}M", "content": swap}
    partitions["root"] = {"size": "100%", "content": root}
    return {"type": "gpt", "partitions": partitions}


def _msdos(ctx: HostContext, root: Settings, swap: Settings) -> Settings:
    # parted's units; a negative position counts from the end of the disk.
    disk = ctx.host.disk
    end = "100%" if disk.swap is None else f"-{swap_mib(disk.swap)}MiB"
    partitions = [
        {"name": "root", "start": "1MiB", "end": end, "bootable": True, "content": root},
    ]
    if disk.swap is not None:
        partitions.append(
            {
                "name": "swap",
                "start": end,
                "end": "100%",
                "fs-type": "linux-swap",
                "content": swap,
            }
        )
    return {"type": "table", "format": "msdos", "partitions": partitions}


def target_host(ctx: HostContext) -> str:
    """`[deploy] target_host`, else the CloudStack management NIC's first IPv4 address (its first
    address without one), else <name>.<domain>, else the host's name. Always a value: colmena reads
    a null deployment.targetHost as "local deployment only" and skips the node on `apply`."""
    host = ctx.host
    if host.deploy.target_host is not None:
        return host.deploy.target_host
    if host.cloudstack is not None:
        nic = host.cloudstack.private_nic
        net = host.network
        for table in (net.bridges, net.bonds, net.vlans, net.interfaces):
            if nic in table and table[nic].addresses:
                ips = [address.split("/")[0] for address in table[nic].addresses]
                # IPv4 first, as `kvmfleet cloudstack` picks the address it adds the host by.
                return next((ip for ip in ips if ":" not in ip), ips[0])
    if host.host.domain is not None:
        return f"{ctx.name}.{host.host.domain}"
    return ctx.name


def tags(ctx: HostContext) -> list[str]:
    """colmena's deployment tags: the roles and the CloudStack zone, pod and cluster."""
    host = ctx.host
    out: list[str] = list(host.host.roles)
    if host.cloudstack is not None:
        cs = host.cloudstack
        out += [f"zone-{cs.zone}", f"pod-{cs.pod}", f"cluster-{cs.cluster}"]
    return out


def deploy(ctx: HostContext) -> Settings:
    return {"tags": tags(ctx), "targetHost": target_host(ctx)}


def findings(ctx: HostContext) -> Iterator[Finding]:
    host = ctx.host
    disk = host.disk
    if host.boot.loader == "systemd-boot" and disk.table != "gpt":
        yield error(
            ("disk", "table"),
            'systemd-boot boots by UEFI from an EFI system partition: needs table = "gpt"',
        )
    if disk.encrypt and host.boot.loader != "systemd-boot":
        yield error(
            ("disk", "encrypt"),
            "an encrypted root needs an unencrypted ESP for kernel and initrd: "
            'use boot.loader = "systemd-boot" with table = "gpt"',
        )
    if disk.encrypt and "hypervisor" in host.host.roles:
        yield warning(
            ("disk", "encrypt"),
            "the host waits at every boot until someone types the disk passphrase on its console",
        )


def identities(ctx: HostContext) -> Iterator[Identity]:
    disk = disk_identity(ctx.host.disk.device)
    if disk is not None:
        # One physical disk (a SAN LUN, a disk moved between machines) installed on by two hosts.
        yield Identity("install disk", disk, ("disk", "device"))
    if ctx.host.deploy.target_host is not None:
        yield Identity("deployment target", ctx.host.deploy.target_host, ("deploy", "target_host"))


# Names under /dev/disk/ other than by-label and by-partlabel name one physical disk (its serial,
# WWN or slot): a copied host has another.
_MACHINE_DISK = re.compile(r"/dev/disk/by-(id|path|uuid|diskseq)/")


def host_values(ctx: HostContext) -> Iterator[HostValue]:
    device = ctx.host.disk.device
    if _MACHINE_DISK.match(device):
        yield HostValue(device, ("disk", "device"))


def peers(ctx: HostContext) -> Iterator[Peer]:
    target = ctx.host.deploy.target_host
    if target is not None:
        yield Peer(
            "deployment target",
            target,
            ("deploy", "target_host"),
            ": a rollout would put this host's system on that host",
            not_roles=("management server",),
        )


CAPABILITY = Capability(
    "install",
    ("disk", "deploy"),
    settings,
    findings,
    identities,
    peers=peers,
    host_values=host_values,
)
