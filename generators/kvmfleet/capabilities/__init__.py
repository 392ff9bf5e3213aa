"""The capability registry: one line per capability, applied in this order (settings lists
concatenate in it)."""

from __future__ import annotations

from kvmfleet.capabilities import (
    base,
    battery,
    ceph,
    cloudstack,
    install,
    network,
    printing,
    quassel,
    sops,
    storage,
    users,
)
from kvmfleet.capability import Capability, HostContext, SecretFile

REGISTRY: tuple[Capability, ...] = (
    base.CAPABILITY,
    users.CAPABILITY,
    network.CAPABILITY,
    storage.CAPABILITY,
    ceph.CAPABILITY,
    cloudstack.CAPABILITY,
    battery.CAPABILITY,
    printing.CAPABILITY,
    quassel.CAPABILITY,
    install.CAPABILITY,
    # last: it reads every other capability's secret files
    sops.CAPABILITY,
)

# Users the services of any capability define: a [users] entry of that name would be merged into
# the service's account.
SERVICE_USERS: frozenset[str] = frozenset().union(*(cap.service_users for cap in REGISTRY))


def secret_files(ctx: HostContext) -> list[SecretFile]:
    """Every secret file the host reads, in registry order."""
    return [secret for cap in REGISTRY for secret in cap.secret_files(ctx)]


__all__ = ["REGISTRY", "SERVICE_USERS", "secret_files"]
