"""Typed models of the inventory, one file per capability; `Host` ties them together."""

from kvmfleet.model.host import Host

__all__ = ["Host"]
