"""`[battery]`: ThinkPad charge thresholds, set by services.tpacpi-bat (modules/tpacpi-bat.nix)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import Model, Percent, constrained
from kvmfleet.problems import quote

_SUPPLY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")


def _battery(value: int | str) -> int | str:
    if isinstance(value, int):
        if not 0 <= value <= 99:
            raise ValueError(f"{value} is not a battery number (0-99)")
    elif not _SUPPLY.match(value):
        raise ValueError(f'{quote(value)} is not a power supply name (e.g. "BAT0")')
    return value


BatteryId = Annotated[
    int | str, constrained("battery number or power supply name (BAT0)", _battery)
]


class BatteryLimit(Model):
    battery: BatteryId = Field(
        description="tpacpi-bat: 1 main, 2 secondary, 0 every battery. "
        'natacpi: a power supply name ("BAT0") or its number (0 = BAT0).'
    )
    start: Percent = Field(
        description="Start charging below this percentage (0 = firmware default); "
        "tpacpi-bat 0-99, natacpi 0-99."
    )
    stop: Percent = Field(
        description="Stop charging at this percentage; tpacpi-bat 1-99 (0 = firmware default), "
        "natacpi 1-100 (100 = default). Must be above start."
    )


class Battery(Model):
    driver: Literal["tpacpi-bat", "natacpi"] = Field(
        default="tpacpi-bat",
        description='"tpacpi-bat" (acpi_call, older ThinkPads such as a 2012 X1 Carbon) or '
        '"natacpi" (the kernel\'s charge_control_*_threshold, ThinkPads from ~2011, Linux >= 5.17).',
    )
    limits: list[BatteryLimit] = Field(
        default=[], description="Charge thresholds, one entry per battery."
    )
