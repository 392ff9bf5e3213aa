"""ThinkPad charge thresholds (`[battery]`) -> services.tpacpi-bat (modules/tpacpi-bat.nix), which
applies them at boot and after every resume."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kvmfleet.capability import Capability, HostContext, Settings
from kvmfleet.model.battery import Battery, BatteryLimit
from kvmfleet.problems import Finding, error, quote, warning


def settings(ctx: HostContext) -> Settings:
    battery = ctx.host.battery
    if battery is None or not battery.limits:
        return {}
    limits = [{"battery": x.battery, "start": x.start, "stop": x.stop} for x in battery.limits]
    return {
        "services": {"tpacpi-bat": {"enable": True, "driver": battery.driver, "limits": limits}}
    }


def _name(battery: Battery, limit: BatteryLimit) -> str:
    """The battery as the driver sees it: tpacpi-bat's number, natacpi's power supply name."""
    if battery.driver == "natacpi" and isinstance(limit.battery, int):
        return f"BAT{limit.battery}"
    return str(limit.battery)


def _show(value: int | str) -> str:
    return str(value) if isinstance(value, int) else quote(value)


def _ranges(battery: Battery, limit: BatteryLimit, index: int) -> Iterator[Finding]:
    here = ("battery", "limits", index)
    if battery.driver == "tpacpi-bat":
        if limit.battery not in (0, 1, 2):
            yield error(
                (*here, "battery"),
                f"tpacpi-bat batteries are 0 (every battery), 1 (main) or 2 (secondary), "
                f"not {_show(limit.battery)}",
            )
        for key in ("start", "stop"):
            if getattr(limit, key) > 99:
                yield error(
                    (*here, key),
                    f"tpacpi-bat takes 1-99 percent or 0 for the firmware default, "
                    f"not {getattr(limit, key)}",
                )
        if limit.start and limit.stop and limit.start >= limit.stop:
            yield error((*here, "start"), f"{limit.start} must be below stop ({limit.stop})")
    else:
        if limit.start > 99:
            yield error((*here, "start"), f"natacpi takes a start of 0-99, not {limit.start}")
        elif limit.stop < 1:
            yield error((*here, "stop"), "natacpi takes a stop of 1-100 (100 = no limit), not 0")
        elif limit.start >= limit.stop:
            yield error((*here, "start"), f"{limit.start} must be below stop ({limit.stop})")


def findings(ctx: HostContext) -> Iterator[Finding]:
    battery = ctx.host.battery
    if battery is None:
        return
    if not battery.limits:
        yield warning(("battery", "limits"), "no limits: no charge threshold is set")
    if "laptop" not in ctx.host.host.roles:
        yield warning(
            ("battery",),
            'charge thresholds on a host without the "laptop" role (is this host a ThinkPad?)',
        )
    if battery.driver == "tpacpi-bat" and ctx.host.host.system != "x86_64-linux":
        yield warning(
            ("battery", "driver"),
            f"tpacpi-bat calls the ACPI methods of x86 ThinkPads; on {ctx.host.host.system} "
            'the kernel\'s own thresholds ("natacpi") are the likelier fit',
        )
    seen: dict[str, int] = {}
    for index, limit in enumerate(battery.limits):
        yield from _ranges(battery, limit, index)
        name = _name(battery, limit)
        if name in seen:
            yield error(
                ("battery", "limits", index, "battery"),
                f"battery {name} already has limits in battery.limits[{seen[name]}]",
            )
        seen.setdefault(name, index)
    if battery.driver == "tpacpi-bat" and "0" in seen and set(seen) - {"0"}:
        yield error(
            ("battery", "limits"),
            "battery 0 (every battery) cannot be combined with limits for battery 1 or 2",
        )


def pitfalls(layer: Mapping[str, Any]) -> Iterator[Finding]:
    table = layer.get("battery")
    if isinstance(table, dict) and isinstance(table.get("limits"), dict):
        yield error(
            ("battery", "limits"),
            "is a list: write each entry as [[battery.limits]] (two brackets), not as a table",
        )


CAPABILITY = Capability("battery", ("battery",), settings, findings, pitfalls=pitfalls)
