"""`[disk]` (the system disk disko partitions at install time) and `[deploy]` (how to reach the
host for rollout)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import AbsolutePath, HostOrAddress, Model, constrained
from kvmfleet.problems import quote

# Whole disks only, in the forms disko numbers partitions of (its lib.deviceNumbering): a
# partition or a file system's by-uuid/by-label link would be repartitioned or not found.
_WHOLE_DISK = re.compile(
    r"/dev/(?:(?:sd|vd|xvd|hd)[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"
    r"|disk/by-(?:id|path|diskseq)/[A-Za-z0-9#+.:=@_-]+)\Z"
)
# Partitions in the kernel's and udev's names: sda1, nvme0n1p2, mmcblk0p1, by-*/...-part1.
_PARTITION = re.compile(
    r"/dev/(?:(?:sd|vd|xvd|hd)[a-z]+[0-9]+|(?:nvme[0-9]+n[0-9]+|mmcblk[0-9]+)p[0-9]+"
    r"|disk/by-[a-z]+/.*-part[0-9]+)\Z"
)
# Device-mapper (LVM, LUKS, multipath and its kpartx partitions), MD RAID and LVM physical
# volumes: layers on top of disks, which disko's disk type does not partition.
_STACKED = re.compile(
    r"/dev/(?:mapper/.*|dm-[0-9]+|md[0-9a-z_/-]*|disk/by-id/(?:dm-|md-|lvm-).*)\Z"
)
# Links to file systems and partitions, never to a disk.
_FILESYSTEM_LINK = re.compile(r"/dev/disk/by-(?:uuid|label|partuuid|partlabel)/.*\Z")
_EXAMPLES = '(e.g. "/dev/sda", "/dev/nvme0n1", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4")'


def _whole_disk(value: str) -> str:
    if _PARTITION.match(value):
        raise ValueError(
            f"{quote(value)} is a partition, not a whole disk: disko partitions the whole disk "
            f"{_EXAMPLES}"
        )
    if _STACKED.match(value):
        raise ValueError(
            f"{quote(value)} is a device-mapper, multipath or RAID device, not a whole disk: "
            f"give the disk itself {_EXAMPLES}"
        )
    if _FILESYSTEM_LINK.match(value):
        raise ValueError(
            f"{quote(value)} names a file system or partition, not a whole disk {_EXAMPLES}"
        )
    if not _WHOLE_DISK.match(value):
        raise ValueError(f"{quote(value)} is not a whole disk {_EXAMPLES}")
    return value


_WWN = re.compile(r"(?:wwn-0x|scsi-3)([0-9a-f]+)\Z")


def disk_identity(device: str) -> str | None:
    """What names the disk itself in a fleet, if the path does: a /dev/disk/by-id name, with the
    two names udev gives one NAA WWN (wwn-0x<naa>, scsi-3<naa>) taken as one. Kernel names
    (/dev/sda) and by-path/by-diskseq names are per machine."""
    prefix = "/dev/disk/by-id/"
    if not device.startswith(prefix):
        return None
    name = device[len(prefix) :]
    match = _WWN.match(name.lower())
    return f"WWN 0x{match[1]}" if match else name


DiskDevice = Annotated[AbsolutePath, constrained("whole-disk device path", _whole_disk)]

SWAP_MIN_MIB = 256
SWAP_MAX_MIB = 256 * 1024
_SIZE = re.compile(r"([1-9][0-9]{0,6})([MG])\Z")


def swap_mib(size: str) -> int:
    """A swap size in MiB: "8G" is 8192 (binary units, as sgdisk and parted read them)."""
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f'{quote(size)} is not a size such as "8G" (GiB) or "512M" (MiB)')
    return int(match[1]) * (1024 if match[2] == "G" else 1)


def _swap_size(value: str) -> str:
    mib = swap_mib(value)
    if not SWAP_MIN_MIB <= mib <= SWAP_MAX_MIB:
        raise ValueError(
            f"{quote(value)} is not a sane swap size: between {SWAP_MIN_MIB}M and "
            f"{SWAP_MAX_MIB // 1024}G"
        )
    return value


SwapSize = Annotated[str, constrained('swap size ("256M" to "256G")', _swap_size)]

# One rule for every "host name or IP address" of the inventory.
TargetHost = HostOrAddress


class Disk(Model):
    """`[disk]`: the system disk; disko partitions, formats and mounts it at install time."""

    device: DiskDevice = Field(
        description="The whole disk to install on (wiped at install), e.g. /dev/sda or /dev/disk/by-id/..."
    )
    table: Literal["msdos", "gpt"] = Field(
        description='Partition table: "msdos" (BIOS, GRUB) or "gpt" (GRUB with a BIOS boot partition, or UEFI).'
    )
    filesystem: Literal["ext4", "xfs", "btrfs"] = Field(
        default="ext4", description="Root file system."
    )
    swap: SwapSize | None = Field(
        default=None, description='Swap partition size, e.g. "8G"; none: no swap.'
    )
    encrypt: bool = Field(
        default=False,
        description="LUKS-encrypt the root file system; its passphrase is asked at every boot "
        '(laptops; needs boot.loader = "systemd-boot").',
    )


class Deploy(Model):
    """`[deploy]`: how the rollout tools (colmena, nixos-rebuild --target-host) reach the host."""

    target_host: TargetHost | None = Field(
        default=None,
        description="SSH address for deployment; default: the CloudStack management NIC's "
        "first address, else <name>.<domain>, else the host's name.",
    )
