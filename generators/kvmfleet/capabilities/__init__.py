"""The capability registry: one line per capability, applied in this order."""

from __future__ import annotations

from kvmfleet.capabilities import battery, ceph, cloudstack, host, network, storage
from kvmfleet.capabilities.base import Capability, HostContext, Identity, Settings

REGISTRY: tuple[Capability, ...] = (
    Capability(
        "host",
        ("host", "boot", "disk", "ssh", "packages", "sysctl", "firewall"),
        host.settings,
        host.findings,
    ),
    Capability("network", ("network",), network.settings, network.findings, network.identities),
    Capability("storage", ("iscsi", "multipath"), None, storage.findings, storage.identities),
    Capability("ceph", ("ceph",), None, ceph.findings),
    Capability("cloudstack", ("cloudstack",), None, cloudstack.findings, cloudstack.identities),
    Capability("battery", ("battery",), None, battery.findings),
)

__all__ = ["REGISTRY", "Capability", "HostContext", "Identity", "Settings"]
