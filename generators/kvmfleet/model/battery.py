"""`[battery]`: ThinkPad charge thresholds (translated by the battery capability)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kvmfleet.model.types import Model, Percent


class BatteryLimit(Model):
    battery: Literal[0, 1, 2] = Field(description="1 main, 2 secondary, 0 both.")
    start: Percent = Field(description="Start charging below this (0 = firmware default).")
    stop: Percent = Field(description="Stop charging at this (0 = firmware default).")


class Battery(Model):
    driver: Literal["tpacpi-bat", "natacpi"] = Field(
        default="tpacpi-bat",
        description='"tpacpi-bat" (acpi_call, older ThinkPads) or "natacpi" (kernel sysfs).',
    )
    limits: list[BatteryLimit] = Field(default=[], description="Charge thresholds per battery.")
