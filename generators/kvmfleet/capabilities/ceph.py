"""Ceph client (`[ceph]`): validated here; the NixOS translation belongs to the Ceph capability's issue."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from kvmfleet.capability import Capability, HostContext
from kvmfleet.model.types import split_host_port
from kvmfleet.problems import Finding, error


def findings(ctx: HostContext) -> Iterator[Finding]:
    ceph = ctx.host.ceph
    if ceph is None:
        return
    families = {ipaddress.ip_address(split_host_port(m)[0]).version for m in ceph.monitors}
    if len(families) > 1:
        yield error(
            ("ceph", "monitors"),
            "mixes IPv4 and IPv6 monitors: a Ceph messenger binds one address family",
        )
    seen: dict[str, int] = {}
    for index, mount in enumerate(ceph.cephfs):
        if mount.mountpoint in seen:
            yield error(
                ("ceph", "cephfs", index, "mountpoint"),
                f'"{mount.mountpoint}" is already used by ceph.cephfs[{seen[mount.mountpoint]}]',
            )
        seen.setdefault(mount.mountpoint, index)


CAPABILITY = Capability("ceph", ("ceph",), None, findings)
