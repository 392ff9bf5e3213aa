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
    storage,
    users,
)
from kvmfleet.capability import Capability

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
)

__all__ = ["REGISTRY"]
