"""Multipath iSCSI (`[iscsi]`, `[multipath]`): validated and checked fleet-wide; the NixOS translation
(openiscsi, iface binding unit, multipath.conf) belongs to the storage capability's issue."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capabilities.network import interface_names
from kvmfleet.capability import Capability, HostContext, Identity, Renew
from kvmfleet.problems import Finding, error


def findings(ctx: HostContext) -> Iterator[Finding]:
    iscsi = ctx.host.iscsi
    if iscsi is None:
        return
    known = interface_names(ctx.host.network)
    for name, iface in iscsi.ifaces.items():
        if iface.interface not in known:
            yield error(
                ("iscsi", "ifaces", name, "interface"),
                f'"{iface.interface}" is not an interface defined under [network]',
            )
    for index, target in enumerate(iscsi.targets):
        for position, iface_name in enumerate(target.ifaces):
            if iface_name not in iscsi.ifaces:
                yield error(
                    ("iscsi", "targets", index, "ifaces", position),
                    f'"{iface_name}" is not defined in [iscsi.ifaces]',
                )


def identities(ctx: HostContext) -> Iterator[Identity]:
    if ctx.host.iscsi is not None:
        iqn = ctx.host.iscsi.initiator_name
        yield Identity("iSCSI initiator name", iqn, ("iscsi", "initiator_name"), _renew_iqn(iqn))


def _renew_iqn(iqn: str) -> Renew:
    """An IQN ending in `:<host>` gets the new host's name; any other is the administrator's."""

    def renew(like: str, name: str) -> str | None:
        return iqn[: -len(like)] + name if iqn.endswith(f":{like}") else None

    return renew


CAPABILITY = Capability("storage", ("iscsi", "multipath"), None, findings, identities)
