"""`[ceph]`: Ceph client for RBD (VM disks through librados) and CephFS kernel mounts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import (
    AbsolutePath,
    Model,
    SecretFile,
    Uuid,
    constrained,
    matching,
    refuse_credentials,
    split_host_port,
)
from kvmfleet.problems import quote

CephId = Annotated[
    str,
    matching(
        # Bounded: the id names /etc/ceph/ceph.client.<id>.keyring and a systemd unit, whose
        # names the kernel and systemd limit to 255 characters.
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "a Ceph client or file system name (letters, digits, '-', '_', '.'; at most 64 characters)",
        "Ceph name",
    ),
]

# The messenger v1 and v2 (msgr2) monitor ports Ceph assigns (IANA: 3300).
MSGR1_PORT = 6789
MSGR2_PORT = 3300


def monitor_address(value: str) -> tuple[str, int]:
    """`[2001:db8::11]:6789` or `10.0.0.11:3300` -> (normalised address, port)."""
    address, port = split_host_port(value)
    if port is None:
        raise ValueError("the port is missing")
    return address, port


def _monitor(value: str) -> str:
    refuse_credentials(value)
    try:
        monitor_address(value)
    except ValueError as exc:
        raise ValueError(
            f'{quote(value)} is not a monitor address ("[2001:db8::11]:6789" or '
            f'"10.0.0.11:6789"; port {MSGR2_PORT} for msgr2, {MSGR1_PORT} for v1): {exc}'
        ) from None
    return value


Monitor = Annotated[str, constrained("Ceph monitor address ([v6]:port or v4:port)", _monitor)]

# Directories a network file system must never cover: the system itself lives there.
_SYSTEM_TREES = ("/nix", "/boot", "/etc", "/usr", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin")
# /var/empty (sshd's privilege separation: must stay root's and read-only, or sshd refuses every
# login), NixOS's uid/gid maps, systemd's state, root's home (its SSH keys).
_STATE_TREES = ("/lib", "/lib64", "/var/empty", "/var/lib/nixos", "/var/lib/systemd", "/root")
_SYSTEM_DIRS = ("/", "/var", "/root", "/tmp")


def _system_directory(value: str) -> bool:
    if value in _SYSTEM_DIRS or (value.startswith("/var/") and value.count("/") == 2):
        return True  # /var/lib, /var/log, /var/cache, ...: shared by the whole system
    return any(
        value == tree or value.startswith(tree + "/") for tree in _SYSTEM_TREES + _STATE_TREES
    )


def _mountpoint(value: str) -> str:
    if _system_directory(value):
        raise ValueError(
            f"{quote(value)} is a system directory: mount CephFS on a directory of its own "
            '(e.g. "/mnt/cephfs")'
        )
    return value


Mountpoint = Annotated[
    AbsolutePath, constrained("mountpoint (not a system directory)", _mountpoint)
]

# Set by kvmfleet from other keys; a second value in `options` would contradict them.
RESERVED_OPTIONS = {
    "mon_addr": "ceph.monitors",
    "ms_mode": "ms_mode",
    "name": "ceph.client",
    "fsid": "ceph.fsid",
    "mds_namespace": "fs_name",
    "fs": "fs_name",
    "secret": "ceph.keyring_file (mount.ceph reads the key from the keyring)",
    "secretfile": "ceph.keyring_file (mount.ceph reads the key from the keyring)",
    "_netdev": "kvmfleet (always set)",
    "x-systemd.automount": "kvmfleet (always set)",
}


def _mount_option(value: str) -> str:
    name = value.split("=", 1)[0]
    if name in RESERVED_OPTIONS:
        raise ValueError(f"{quote(value)}: {name} is set by kvmfleet from {RESERVED_OPTIONS[name]}")
    return value


MountOption = Annotated[
    str,
    matching(
        r"[A-Za-z0-9_][A-Za-z0-9_.-]*(=[A-Za-z0-9_.:/@+-]+)?",
        'a mount option ("noatime", "rasize=8388608"; no commas or spaces)',
        "mount option",
    ),
    constrained("mount option", _mount_option),
]

MsMode = Literal["legacy", "crc", "secure", "prefer-crc", "prefer-secure"]


class CephFsMount(Model):
    """`[[ceph.cephfs]]`: one CephFS kernel mount."""

    mountpoint: Mountpoint = Field(description="Where it is mounted on the host.")
    path: AbsolutePath = Field(default="/", description="Directory inside the file system.")
    fs_name: CephId = Field(
        default="cephfs",
        description="File system name (`ceph fs ls`); the device syntax "
        "<client>@<fsid>.<fs_name>=<path> always names one.",
    )
    ms_mode: MsMode | None = Field(
        default=None,
        description="Kernel messenger mode: unset or legacy speaks v1 (monitors on port 6789); "
        "crc, secure, prefer-crc and prefer-secure speak msgr2 (monitors on port 3300).",
    )
    options: list[MountOption] = Field(
        default=[], description='More mount options, e.g. ["noatime"].'
    )


class Ceph(Model):
    """`[ceph]`: the cluster this host uses."""

    fsid: Uuid = Field(description="Cluster fsid (`ceph fsid`).")
    monitors: list[Monitor] = Field(
        default=[],
        description='Monitor addresses with port, all of one family: "[v6]:port" or "v4:port" '
        "(6789 v1, 3300 msgr2).",
    )
    client: CephId = Field(description="Client id (client.<id>).")
    keyring_file: SecretFile = Field(
        description="Keyring path on the host, provisioned out of band; installed as "
        "/etc/ceph/ceph.client.<id>.keyring at boot."
    )
    cephfs: list[CephFsMount] = Field(default=[], description="CephFS kernel mounts.")
