"""Ceph client (`[ceph]`): /etc/ceph/ceph.conf through nixpkgs' services.ceph (no daemons), the
keyring and tools through modules/ceph-client.nix (services.ceph-client), libvirt and QEMU with RBD
on hypervisors, and CephFS kernel mounts as fileSystems entries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from kvmfleet.capability import Capability, HostContext, Peer, SecretFile, Settings
from kvmfleet.model.ceph import (
    MSGR1_PORT,
    MSGR2_PORT,
    Ceph,
    CephFsMount,
    monitor_address,
)
from kvmfleet.model.types import ip_address
from kvmfleet.problems import Finding, KeyPath, error

# A cephx key: base64 of 28 bytes (type 1, creation time, length 16, the secret), so "AQ" + 36
# characters + "==". Looked for inside any string: "secret=AQ...==" is a key too.
CEPH_KEY = re.compile(r"AQ[A-Za-z0-9+/]{36}==")

# Kernel ms_mode values that speak msgr2.
_MSGR2_MODES = {"crc", "secure", "prefer-crc", "prefer-secure"}


def monitors(ceph: Ceph) -> list[str]:
    """The monitors as Ceph and the kernel read them: `[v6]:port` or `v4:port`, normalised."""
    out = []
    for value in ceph.monitors:
        address, port = monitor_address(value)
        host = f"[{address}]" if ":" in address else address
        out.append(f"{host}:{port}")
    return out


def settings(ctx: HostContext) -> Settings:
    ceph = ctx.host.ceph
    if ceph is None:
        return {}
    mons = monitors(ceph)
    ipv6 = bool(mons) and mons[0].startswith("[")
    out: Settings = {
        "services": {
            "ceph": {
                "enable": True,
                "global": {"fsid": ceph.fsid, "monHost": ", ".join(mons)},
                "client": {
                    "enable": True,
                    # Ceph's messenger binds one address family: the monitors'.
                    "extraConfig": {
                        "client": {
                            "ms_bind_ipv6": "true" if ipv6 else "false",
                            "ms_bind_ipv4": "false" if ipv6 else "true",
                        }
                    },
                },
            },
            "ceph-client": {
                "enable": True,
                "keyrings": {ceph.client: {"file": ceph.keyring_file}},
                # VM disks in RBD pools: libvirt and QEMU built with librbd.
                "libvirt": {"enable": "hypervisor" in ctx.host.host.roles},
            },
        }
    }
    if ceph.cephfs:
        out["fileSystems"] = {m.mountpoint: _mount(ceph, mons, m) for m in ceph.cephfs}
    return out


def _mount(ceph: Ceph, mons: list[str], mount: CephFsMount) -> Settings:
    options = [f"mon_addr={'/'.join(mons)}"]
    if mount.ms_mode is not None:
        options.append(f"ms_mode={mount.ms_mode}")
    # _netdev: after the network, unmounted before it goes. The automount mounts on first access
    # and tries again on the next access after a failure (cluster unreachable, key not yet
    # provisioned), instead of leaving a failed mount unit; boot never waits for the cluster.
    options += ["_netdev", "x-systemd.automount", *mount.options]
    return {
        # The new device syntax: the key comes from /etc/ceph/ceph.client.<id>.keyring.
        "device": f"{ceph.client}@{ceph.fsid}.{mount.fs_name}={mount.path}",
        "fsType": "ceph",
        "options": options,
        "noCheck": True,
    }


def findings(ctx: HostContext) -> Iterator[Finding]:
    ceph = ctx.host.ceph
    if ceph is None:
        return
    yield from _monitor_findings(ceph)
    seen: dict[str, int] = {}
    for index, mount in enumerate(ceph.cephfs):
        if mount.mountpoint in seen:
            yield error(
                ("ceph", "cephfs", index, "mountpoint"),
                f'"{mount.mountpoint}" is already used by ceph.cephfs[{seen[mount.mountpoint]}]',
            )
        seen.setdefault(mount.mountpoint, index)
        yield from _protocol_findings(ceph, index, mount)
    # Last: it reads other tables, and a broken one ends a capability's findings.
    yield from _secrets_on_cephfs(ctx, ceph)


def peers(ctx: HostContext) -> Iterator[Peer]:
    ceph = ctx.host.ceph
    if ceph is None:
        return
    for index, value in enumerate(ceph.monitors):
        # kvmfleet sets up Ceph clients only: no fleet host runs a monitor, this one included.
        address = monitor_address(value)[0]
        yield Peer("Ceph monitor", address, ("ceph", "monitors", index), itself=True)


def secret_files(ctx: HostContext) -> Iterator[SecretFile]:
    ceph = ctx.host.ceph
    if ceph is not None:
        yield SecretFile(
            ("ceph", "keyring_file"),
            ceph.keyring_file,
            f"ceph-keyring-{ceph.client}.service (copies it to /etc/ceph for librados and "
            "mount.ceph)",
        )


def _secrets_on_cephfs(ctx: HostContext, ceph: Ceph) -> Iterator[Finding]:
    """A secret on a CephFS mount is not there when it is needed: the keyring mounts CephFS
    (a dependency cycle), password files are read at activation, before network mounts, and
    the root password is the way in when the network is down."""
    # The registry imports this module: read every capability's declarations at run time.
    from kvmfleet.capabilities import secret_files as every_secret_file

    for secret in every_secret_file(ctx):
        path, file = secret.path, secret.file
        for index, mount in enumerate(ceph.cephfs):
            if file.startswith(mount.mountpoint.rstrip("/") + "/"):
                yield error(
                    path,
                    f'is on the CephFS mount "{mount.mountpoint}" (ceph.cephfs[{index}]), which '
                    "is not mounted yet (or needs it to mount) when it is read: keep secrets on "
                    "a local file system",
                )
                break


def _monitor_findings(ceph: Ceph) -> Iterator[Finding]:
    if not ceph.monitors:
        needs = "the CephFS mounts (ceph.cephfs) and librados" if ceph.cephfs else "librados"
        yield error(
            ("ceph", "monitors"),
            f"lists no monitor: {needs} find the cluster through them "
            '(e.g. ["[2001:db8::11]:6789"])',
        )
        return
    addresses = [monitor_address(m) for m in ceph.monitors]
    families = {ip_address(a).version for a, _ in addresses}
    if len(families) > 1:
        yield error(
            ("ceph", "monitors"),
            "mixes IPv4 and IPv6 monitors: Ceph cannot do dual stack "
            "(its messenger binds one address family); list the monitors of one family",
        )
    first: dict[tuple[str, int], int] = {}
    for index, address in enumerate(addresses):
        if address in first:
            yield error(
                ("ceph", "monitors", index),
                f'"{ceph.monitors[index]}" is listed twice (also ceph.monitors[{first[address]}])',
            )
        first.setdefault(address, index)


def _protocol_findings(ceph: Ceph, index: int, mount: CephFsMount) -> Iterator[Finding]:
    """The kernel client speaks one protocol per mount: v1 unless ms_mode says msgr2, and the
    monitor ports in mon_addr= must be that protocol's."""
    msgr2 = mount.ms_mode in _MSGR2_MODES
    wrong = MSGR1_PORT if msgr2 else MSGR2_PORT
    bad = [m for m in ceph.monitors if monitor_address(m)[1] == wrong]
    if not bad:
        return
    if msgr2:
        message = (
            f'ms_mode "{mount.ms_mode}" speaks msgr2, but monitor {bad[0]} is on the v1 port '
            f"{MSGR1_PORT}: list the monitors with port {MSGR2_PORT}, or leave ms_mode unset for v1"
        )
        yield error(("ceph", "cephfs", index, "ms_mode"), message)
    else:
        message = (
            f"monitor {bad[0]} is on the msgr2 port {MSGR2_PORT}, but the kernel client speaks "
            f'v1 unless ms_mode is set: set ms_mode = "prefer-crc" (or "secure"), or use port '
            f"{MSGR1_PORT}"
        )
        yield error(("ceph", "cephfs", index), message)


def pitfalls(layer: Mapping[str, Any]) -> Iterator[Finding]:
    """A cephx key anywhere in the inventory (a key's name or value): it belongs in a keyring file
    on the host."""
    out: list[KeyPath] = []
    _keys_in(layer, (), out)
    return (error(path, _KEY_MESSAGE) for path in out)


_KEY_MESSAGE = (
    "looks like a Ceph key: secrets never go in the inventory; put the keyring in a file on "
    "the host and give its path in ceph.keyring_file"
)


def _keys_in(value: Any, path: KeyPath, out: list[KeyPath]) -> None:
    # Appends to one list rather than nesting generators: it runs on every value of every host.
    if type(value) is dict or isinstance(value, Mapping):
        for key, child in value.items():
            if isinstance(key, str) and CEPH_KEY.search(key):
                out.append((*path, key))
            elif type(child) is str:  # most values: searched here, a path made only for a key
                if CEPH_KEY.search(child):
                    out.append((*path, key))
            else:
                _keys_in(child, (*path, key), out)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _keys_in(child, (*path, index), out)
    elif isinstance(value, str) and CEPH_KEY.search(value):
        out.append(path)


CAPABILITY = Capability(
    "ceph",
    ("ceph",),
    settings,
    findings,
    pitfalls=pitfalls,
    peers=peers,
    secret_files=secret_files,
    service_users=frozenset({"ceph"}),
)
