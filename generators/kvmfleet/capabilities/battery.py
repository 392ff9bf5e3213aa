"""ThinkPad charge thresholds (`[battery]`): validated here; the NixOS translation (tpacpi-bat unit)
belongs to the battery capability's issue."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capability import Capability, HostContext
from kvmfleet.problems import Finding, error


def findings(ctx: HostContext) -> Iterator[Finding]:
    battery = ctx.host.battery
    if battery is None:
        return
    seen: dict[int, int] = {}
    for index, limit in enumerate(battery.limits):
        if limit.start and limit.stop and limit.start >= limit.stop:
            yield error(
                ("battery", "limits", index, "start"),
                f"{limit.start} must be below stop ({limit.stop})",
            )
        if limit.battery in seen:
            yield error(
                ("battery", "limits", index, "battery"),
                f"battery {limit.battery} already has limits in battery.limits[{seen[limit.battery]}]",
            )
        seen.setdefault(limit.battery, index)
    batteries = set(seen)
    if 0 in batteries and batteries - {0}:
        yield error(
            ("battery", "limits"),
            "battery 0 (both) cannot be combined with limits for battery 1 or 2",
        )


CAPABILITY = Capability("battery", ("battery",), None, findings)
