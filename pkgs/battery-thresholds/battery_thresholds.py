#!/usr/bin/env python3
"""Set ThinkPad battery charge thresholds, through tpacpi-bat (acpi_call) or the kernel's natacpi
sysfs files, and say what was set.

    battery-thresholds --driver tpacpi-bat [--tpacpi-bat PATH] BATTERY:START:STOP ...
    battery-thresholds --driver natacpi [--sysfs-root DIR] BATTERY:START:STOP ...

tpacpi-bat batteries are 0 (every battery), 1 (main) or 2 (secondary), percentages 1-99 or 0 for
the firmware default. natacpi batteries are power_supply names (BAT0) or indexes (0 = BAT0), start
0-99, stop 1-100 (100 = default).

thinkpad_acpi (drivers/platform/x86/lenovo/thinkpad_acpi.c, Linux 6.18) refuses a start above its
cached stop and a stop below its cached start. That cache is filled once, when the battery is
probed, and follows only writes through sysfs: after the embedded controller forgets its values
(battery pulled, EC reset) sysfs reads the EC while the kernel still checks the old pair. So the
order never depends on what can be read: start 0, then stop, then start, which every cached pair
accepts. tpacpi-bat gets the same order. Exit status 1 when a battery refuses a value or reads back
something else, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DRIVERS = ("tpacpi-bat", "natacpi")
_NATACPI_NAME = re.compile(r"[A-Za-z0-9_]{1,32}\Z")
# tpacpi-bat's methods and the kernel's files for each threshold
_METHOD = {"start": "ST", "stop": "SP"}
_FILE = {"start": "charge_control_start_threshold", "stop": "charge_control_end_threshold"}


class RefusedError(Exception):
    """The hardware (firmware, kernel or tpacpi-bat) did not take a value."""


@dataclass(frozen=True)
class Limit:
    battery: str
    start: int
    stop: int


def parse_limit(text: str, driver: str) -> Limit:
    """BATTERY:START:STOP, checked against the driver's ranges."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not BATTERY:START:STOP")
    battery, start_text, stop_text = parts
    if not (start_text.isdigit() and stop_text.isdigit()):
        raise ValueError(f"{text!r}: start and stop must be whole percentages")
    start, stop = int(start_text), int(stop_text)
    if driver == "tpacpi-bat":
        if battery not in ("0", "1", "2"):
            raise ValueError(f"{text!r}: tpacpi-bat batteries are 0 (all), 1 or 2")
        if start > 99 or stop > 99:
            raise ValueError(f"{text!r}: tpacpi-bat takes 1-99 percent, or 0 for the default")
        if start and stop and start >= stop:
            raise ValueError(f"{text!r}: start must be below stop")
    else:
        if battery.isdigit():
            battery = f"BAT{int(battery)}"
        if not _NATACPI_NAME.match(battery):
            raise ValueError(f"{text!r}: {battery!r} is not a power supply name such as BAT0")
        if start > 99 or not 1 <= stop <= 100:
            raise ValueError(f"{text!r}: natacpi takes start 0-99 and stop 1-100")
        if start >= stop:
            raise ValueError(f"{text!r}: start must be below stop")
    return Limit(battery, start, stop)


def write_order(limit: Limit) -> list[tuple[str, int]]:
    """The writes for one battery, accepted from any pair the kernel has cached: start 0 is at
    most every stop, then any stop is at least 0, then the start is below the new stop."""
    writes = [("start", 0), ("stop", limit.stop)]
    if limit.start != 0:
        writes.append(("start", limit.start))
    return writes


Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", check=False
        )
    except OSError as err:  # no such program, or not executable: the battery is refused
        return subprocess.CompletedProcess(list(argv), 127, "", f"cannot run {argv[0]}: {err}")


class TpacpiBat:
    """Thresholds through the tpacpi-bat command."""

    def __init__(self, program: str, run: Run = _run) -> None:
        self.program = program
        self.run = run

    def _get(self, what: str, battery: str) -> int | None:
        result = self.run([self.program, "-g", _METHOD[what], battery])
        match = re.match(r"\s*(\d+)", result.stdout)
        if result.returncode != 0 or match is None:
            return None
        return int(match.group(1))

    def set(self, battery: str, what: str, value: int) -> None:
        argv = [self.program, "-s", _METHOD[what], battery, str(value)]
        result = self.run(argv)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            raise RefusedError(f"`{' '.join(argv)}` failed: {detail}")

    def verify(self, battery: str, what: str, value: int) -> None:
        if battery == "0":
            return  # tpacpi-bat cannot read battery 0
        got = self._get(what, battery)
        if got is not None and got != value:
            raise RefusedError(
                f"battery {battery}: {what} threshold reads {got} after setting {value}"
            )


class Natacpi:
    """Thresholds through /sys/class/power_supply/<battery>/charge_control_*_threshold."""

    def __init__(self, sysfs_root: Path) -> None:
        self.root = sysfs_root

    def _path(self, battery: str, what: str) -> Path:
        return self.root / "class" / "power_supply" / battery / _FILE[what]

    def _read(self, battery: str, what: str) -> int:
        path = self._path(battery, what)
        try:
            return int(path.read_text().strip())
        except FileNotFoundError:
            raise RefusedError(
                f"{path} does not exist (no battery {battery}, or no natacpi support)"
            ) from None
        except (OSError, ValueError) as err:
            raise RefusedError(f"cannot read {path}: {err}") from None

    def set(self, battery: str, what: str, value: int) -> None:
        path = self._path(battery, what)
        try:
            # One write(2) of the whole value, as `echo N >` does: sysfs parses each write.
            with path.open("w") as file:
                file.write(f"{value}\n")
        except FileNotFoundError:
            raise RefusedError(
                f"{path} does not exist (no battery {battery}, or no natacpi support)"
            ) from None
        except OSError as err:
            raise RefusedError(f"writing {value} to {path} failed: {err.strerror or err}") from None

    def verify(self, battery: str, what: str, value: int) -> None:
        got = self._read(battery, what)
        if got != value:
            raise RefusedError(f"{self._path(battery, what)} reads {got} after writing {value}")


Backend = TpacpiBat | Natacpi


def apply(backend: Backend, limits: Sequence[Limit], log: Callable[[str], None]) -> list[str]:
    """Set every limit; return one message per battery that refused (the others are still set)."""
    failures = []
    for limit in limits:
        try:
            for what, value in write_order(limit):
                backend.set(limit.battery, what, value)
            for what, value in (("start", limit.start), ("stop", limit.stop)):
                backend.verify(limit.battery, what, value)
        except RefusedError as err:
            failures.append(f"battery {limit.battery}: {err}")
            continue
        log(
            f"battery {limit.battery}: charge thresholds set to start {limit.start}, stop {limit.stop}"
        )
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="battery-thresholds", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--driver", choices=DRIVERS, required=True)
    parser.add_argument("--tpacpi-bat", default="tpacpi-bat", help="the tpacpi-bat program")
    parser.add_argument("--sysfs-root", default="/sys", type=Path, help="where sysfs is mounted")
    parser.add_argument("limits", nargs="+", metavar="BATTERY:START:STOP")
    args = parser.parse_args(argv)
    try:
        limits = [parse_limit(text, args.driver) for text in args.limits]
    except ValueError as err:
        parser.error(str(err))
    backend: Backend = (
        TpacpiBat(args.tpacpi_bat) if args.driver == "tpacpi-bat" else Natacpi(args.sysfs_root)
    )
    failures = apply(backend, limits, lambda line: print(line, flush=True))
    for failure in failures:
        print(f"battery-thresholds: {failure}", file=sys.stderr, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
