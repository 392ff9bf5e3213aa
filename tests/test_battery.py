"""The battery capability: `[battery]` -> services.tpacpi-bat, per-driver validation, warnings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    REPO,
    findings_of,
    fleet_settings,
    host_program,
    host_toml,
    settings_of,
)

LAPTOP = {"roles": ["laptop"], "state_version": "26.05"}


def _limits(driver: str, *limits: tuple[int | str, int, int]) -> str:
    text = f'[battery]\ndriver = "{driver}"\n'
    for battery, start, stop in limits:
        value = f'"{battery}"' if isinstance(battery, str) else battery
        text += f"[[battery.limits]]\nbattery = {value}\nstart = {start}\nstop = {stop}\n"
    return host_toml(text, host=LAPTOP)


def test_demo_laptop_limits_every_battery() -> None:
    s = fleet_settings(REPO, "x1carbon")
    assert s["services"]["tpacpi-bat"] == {
        "enable": True,
        "driver": "tpacpi-bat",
        "limits": [{"battery": 0, "start": 40, "stop": 90}],
    }


def test_demo_laptop_round_trips_through_nix(nix_eval: Callable[[Path], Any]) -> None:
    evaluated = nix_eval(REPO / "hosts" / "x1carbon" / "generated.nix")
    assert evaluated["services"]["tpacpi-bat"]["limits"] == [
        {"battery": 0, "start": 40, "stop": 90}
    ]


def test_natacpi_keeps_names_and_numbers() -> None:
    s = settings_of(_limits("natacpi", (0, 40, 80), ("BAT1", 75, 100)))
    assert s["services"]["tpacpi-bat"] == {
        "enable": True,
        "driver": "natacpi",
        "limits": [
            {"battery": 0, "start": 40, "stop": 80},
            {"battery": "BAT1", "start": 75, "stop": 100},
        ],
    }
    assert findings_of(_limits("natacpi", (0, 40, 80), ("BAT1", 75, 100)), "battery") == []


def test_firmware_defaults_are_valid_for_tpacpi_bat() -> None:
    assert findings_of(_limits("tpacpi-bat", (1, 0, 90), (2, 40, 0)), "battery") == []


def test_natacpi_number_and_name_of_one_battery_clash() -> None:
    assert findings_of(_limits("natacpi", (0, 40, 80), ("BAT0", 40, 80)), "battery") == [
        "battery.limits.1.battery: battery BAT0 already has limits in battery.limits[0]"
    ]


def test_battery_0_covers_the_others_for_tpacpi_bat_only() -> None:
    assert findings_of(_limits("tpacpi-bat", (0, 40, 80), (1, 40, 80)), "battery") == [
        "battery.limits: battery 0 (every battery) cannot be combined with limits for battery 1 or 2"
    ]
    assert findings_of(_limits("natacpi", (0, 40, 80), (1, 40, 80)), "battery") == []


def test_warnings_without_laptop_role_or_limits() -> None:
    text = host_toml('[battery]\ndriver = "natacpi"\n')
    assert findings_of(text, "battery") == [
        "warning: battery.limits: no limits: no charge threshold is set",
        'warning: battery: charge thresholds on a host without the "laptop" role '
        "(is this host a ThinkPad?)",
    ]
    assert settings_of(text).get("services", {}).get("tpacpi-bat") is None


def test_tpacpi_bat_on_aarch64_is_warned_about() -> None:
    text = host_toml(
        "[battery]\n[[battery.limits]]\nbattery = 1\nstart = 40\nstop = 90\n",
        host={**LAPTOP, "system": "aarch64-linux"},
        boot={"loader": "systemd-boot"},
        disk={"device": "/dev/nvme0n1", "table": "gpt"},
    )
    assert findings_of(text, "battery") == [
        "warning: battery.driver: tpacpi-bat calls the ACPI methods of x86 ThinkPads; on "
        'aarch64-linux the kernel\'s own thresholds ("natacpi") are the likelier fit'
    ]


def test_no_battery_table_no_settings() -> None:
    assert "tpacpi-bat" not in settings_of(host_toml(host=LAPTOP)).get("services", {})


bt = host_program("battery-thresholds")


@settings(max_examples=150, deadline=None)
@given(
    driver=st.sampled_from(["tpacpi-bat", "natacpi"]),
    battery=st.one_of(st.integers(0, 4), st.sampled_from(["BAT0", "BAT1", "CMB0"])),
    start=st.integers(0, 100),
    stop=st.integers(0, 100),
)
def test_generator_and_host_program_accept_the_same_limits(
    driver: str, battery: int | str, start: int, stop: int
) -> None:
    """What passes validation is what the threshold writer takes (as modules/tpacpi-bat.nix passes
    it: natacpi numbers become BAT<n>), and the other way round."""
    text = _limits(driver, (battery, start, stop))
    accepted = not [f for f in findings_of(text, "battery") if not f.startswith("warning: ")]
    name = f"BAT{battery}" if driver == "natacpi" and isinstance(battery, int) else str(battery)
    try:
        bt.parse_limit(f"{name}:{start}:{stop}", driver)
        taken = True
    except ValueError:
        taken = False
    assert accepted == taken, (driver, battery, start, stop)
