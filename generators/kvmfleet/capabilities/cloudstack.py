"""CloudStack agent (`[cloudstack]`): validated and checked fleet-wide here; the NixOS translation
(agent package and service, libvirt TLS, ports) belongs to the CloudStack capability's issue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from kvmfleet.capabilities.network import interface_names
from kvmfleet.capability import Capability, HostContext, Identity
from kvmfleet.problems import Finding, error, warning


def findings(ctx: HostContext) -> Iterator[Finding]:
    cs = ctx.host.cloudstack
    if cs is None:
        return
    if "hypervisor" not in ctx.host.host.roles:
        yield error(
            ("cloudstack",),
            'the CloudStack agent runs on hypervisors only: add "hypervisor" to host.roles',
        )
    known = interface_names(ctx.host.network)
    for key in ("private_nic", "public_nic", "guest_nic"):
        nic = getattr(cs, key)
        if nic not in known:
            yield error(("cloudstack", key), f'"{nic}" is not an interface defined under [network]')
    if cs.libvirt_transport == "tcp":
        yield warning(
            ("cloudstack", "libvirt_transport"),
            '"tcp" is unauthenticated: anyone who reaches port 16509 controls every VM on this host; use "tls"',
        )


def identities(ctx: HostContext) -> Iterator[Identity]:
    if ctx.host.cloudstack is not None:
        yield Identity(
            "CloudStack GUID", ctx.host.cloudstack.guid, ("cloudstack", "guid"), _new_guid
        )


def _new_guid(like: str, name: str) -> str:
    return str(uuid.uuid4())


CAPABILITY = Capability("cloudstack", ("cloudstack",), None, findings, identities)
