"""The host-side threshold writer (pkgs/battery-thresholds): the calls it makes to tpacpi-bat, the
sysfs writes and their order, what it logs, and how it fails."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import host_program

bt = host_program("battery-thresholds")


class FakeTpacpiBat:
    """Records every call; answers -g from its own state; refuses batteries listed in `broken`."""

    def __init__(self, starts: dict[str, int] | None = None, broken: Sequence[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.state = {("start", b): v for b, v in (starts or {}).items()}
        self.broken = set(broken)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv[1:])
        what = {"ST": "start", "SP": "stop"}[argv[2]]
        battery = argv[3]
        if battery in self.broken:
            return subprocess.CompletedProcess(argv, 255, "", "Error: AE_NOT_FOUND\n")
        if argv[1] == "-g":
            value = self.state.get((what, battery), 0)
            label = "default" if value == 0 else "relative percent"
            return subprocess.CompletedProcess(argv, 0, f"{value} ({label})\n", "")
        self.state[(what, battery)] = int(argv[4])
        return subprocess.CompletedProcess(argv, 0, "", "")


def _limits(driver: str, *texts: str) -> list[object]:
    return [bt.parse_limit(t, driver) for t in texts]


def test_tpacpi_bat_battery_0_writes_start_0_stop_start_and_reads_nothing() -> None:
    fake = FakeTpacpiBat()
    log: list[str] = []
    failures = bt.apply(
        bt.TpacpiBat("tpacpi-bat", fake), _limits("tpacpi-bat", "0:40:90"), log.append
    )
    assert failures == []
    # the order does not depend on current values; battery 0 cannot be read back
    assert fake.calls == [
        ["-s", "ST", "0", "0"],
        ["-s", "SP", "0", "90"],
        ["-s", "ST", "0", "40"],
    ]
    assert log == ["battery 0: charge thresholds set to start 40, stop 90"]


def test_tpacpi_bat_lowering_below_current_start_is_accepted_and_verified() -> None:
    fake = FakeTpacpiBat(starts={"1": 85})
    failures = bt.apply(bt.TpacpiBat("tpacpi-bat", fake), _limits("tpacpi-bat", "1:40:60"), print)
    assert failures == []
    assert fake.calls == [
        ["-s", "ST", "1", "0"],
        ["-s", "SP", "1", "60"],
        ["-s", "ST", "1", "40"],
        ["-g", "ST", "1"],
        ["-g", "SP", "1"],
    ]


def test_a_start_of_0_is_written_once() -> None:
    fake = FakeTpacpiBat()
    assert bt.apply(bt.TpacpiBat("tpacpi-bat", fake), _limits("tpacpi-bat", "2:0:80"), print) == []
    assert fake.calls[:2] == [["-s", "ST", "2", "0"], ["-s", "SP", "2", "80"]]
    assert len([c for c in fake.calls if c[0] == "-s"]) == 2


def test_tpacpi_bat_refusal_is_reported_and_other_batteries_still_set() -> None:
    fake = FakeTpacpiBat(broken=["2"])
    log: list[str] = []
    backend = bt.TpacpiBat("tpacpi-bat", fake)
    failures = bt.apply(backend, _limits("tpacpi-bat", "2:40:90", "1:40:90"), log.append)
    assert failures == [
        "battery 2: `tpacpi-bat -s ST 2 0` failed: Error: AE_NOT_FOUND",
    ]
    assert log == ["battery 1: charge thresholds set to start 40, stop 90"]


def test_tpacpi_bat_program_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() with a stand-in tpacpi-bat script that records its arguments."""
    record = tmp_path / "calls"
    script = tmp_path / "tpacpi-bat"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {record}\n[ "$1" = -g ] && echo "0 (default)"\nexit 0\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert bt.main(["--driver", "tpacpi-bat", "--tpacpi-bat", str(script), "0:40:90"]) == 0
    assert record.read_text().splitlines() == ["-s ST 0 0", "-s SP 0 90", "-s ST 0 40"]
    assert capsys.readouterr().out == "battery 0: charge thresholds set to start 40, stop 90\n"

    script.write_text("#!/bin/sh\necho 'Could not find /proc/acpi/call' >&2\nexit 255\n")
    assert bt.main(["--driver", "tpacpi-bat", "--tpacpi-bat", str(script), "1:40:90"]) == 1
    err = capsys.readouterr().err
    assert "battery 1: `" in err and "failed: Could not find /proc/acpi/call" in err


def _sysfs(root: Path, battery: str, start: int, stop: int) -> Path:
    directory = root / "class" / "power_supply" / battery
    directory.mkdir(parents=True)
    (directory / "charge_control_start_threshold").write_text(f"{start}\n")
    (directory / "charge_control_end_threshold").write_text(f"{stop}\n")
    return directory


def test_natacpi_writes_and_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bat0 = _sysfs(tmp_path, "BAT0", 0, 100)
    bat1 = _sysfs(tmp_path, "BAT1", 0, 100)
    argv = ["--driver", "natacpi", "--sysfs-root", str(tmp_path), "0:40:80", "BAT1:75:100"]
    assert bt.main(argv) == 0
    assert (bat0 / "charge_control_start_threshold").read_text() == "40\n"
    assert (bat0 / "charge_control_end_threshold").read_text() == "80\n"
    assert (bat1 / "charge_control_start_threshold").read_text() == "75\n"
    assert (bat1 / "charge_control_end_threshold").read_text() == "100\n"
    assert capsys.readouterr().out.splitlines() == [
        "battery BAT0: charge thresholds set to start 40, stop 80",
        "battery BAT1: charge thresholds set to start 75, stop 100",
    ]


def test_natacpi_missing_battery_and_refused_write_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bat0 = _sysfs(tmp_path, "BAT0", 0, 100)
    # a path that cannot be written, as a kernel refusing the value cannot be faked in tmpfs
    (bat0 / "charge_control_end_threshold").unlink()
    (bat0 / "charge_control_end_threshold").mkdir()
    argv = ["--driver", "natacpi", "--sysfs-root", str(tmp_path), "BAT0:40:80", "BAT1:40:80"]
    assert bt.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("battery-thresholds: battery BAT0: writing 80 to ")
    assert err[1] == (
        f"battery-thresholds: battery BAT1: {tmp_path}/class/power_supply/BAT1/"
        "charge_control_start_threshold does not exist (no battery BAT1, or no natacpi support)"
    )


def test_natacpi_value_not_taken_is_a_failure(tmp_path: Path) -> None:
    _sysfs(tmp_path, "BAT0", 0, 100)

    class Clamping(bt.Natacpi):  # type: ignore[name-defined,misc]
        def set(self, battery: str, what: str, value: int) -> None:
            super().set(battery, what, min(value, 60))

    failures = bt.apply(Clamping(tmp_path), _limits("natacpi", "BAT0:40:80"), print)
    assert failures == [
        f"battery BAT0: {tmp_path}/class/power_supply/BAT0/charge_control_end_threshold "
        "reads 60 after writing 80"
    ]


class ThinkpadAcpi(bt.Natacpi):  # type: ignore[name-defined,misc]
    """thinkpad_acpi's charge_control_*_threshold files as tpacpi_battery_store/_show implement
    them in drivers/platform/x86/lenovo/thinkpad_acpi.c (torvalds/linux, read at the 6.18 layout):
    a write is checked against the kernel's cached pair (filled when the battery was probed, then
    changed only by sysfs writes; a stop is cached before the EC call), goes to the embedded
    controller (stop 100 as 0, "default"), and a read asks the EC (0 reads as 100)."""

    def __init__(self, cached: tuple[int, int], ec: tuple[int, int]) -> None:
        super().__init__(Path("/nonexistent"))
        self.cached_start, self.cached_stop = cached
        self.ec = {"start": ec[0], "stop": 0 if ec[1] == 100 else ec[1]}

    def set(self, battery: str, what: str, value: int) -> None:
        if what == "start":
            if value > 99 or value > self.cached_stop:
                raise bt.RefusedError(f"writing {value} to start: Invalid argument")
            self.ec["start"] = self.cached_start = value
        else:
            if not 1 <= value <= 100 or value < self.cached_start:
                raise bt.RefusedError(f"writing {value} to stop: Invalid argument")
            self.cached_stop = value
            self.ec["stop"] = 0 if value == 100 else value

    def _read(self, battery: str, what: str) -> int:
        value = self.ec[what]
        return 100 if what == "stop" and value == 0 else value


pairs = st.integers(0, 99).flatmap(
    lambda start: st.tuples(st.just(start), st.integers(start + 1, 100))
)
# what the kernel may have cached: each value in its range, in any relation (probed from an EC
# that can hold anything, then changed by writes)
cached_pairs = st.tuples(st.integers(0, 99), st.integers(1, 100))


def test_firmware_reset_under_a_cached_pair_is_no_refusal() -> None:
    """The review's case: cached 75/80, the EC back at 0/100, wanted 40/60. Ordering by what sysfs
    reads (start 0: stop first) wrote 60 to stop against the cached start 75: Invalid argument."""
    kernel = ThinkpadAcpi(cached=(75, 80), ec=(0, 100))
    log: list[str] = []
    assert bt.apply(kernel, _limits("natacpi", "BAT0:40:60"), log.append) == []
    assert (kernel.cached_start, kernel.cached_stop) == (40, 60)
    assert kernel.ec == {"start": 40, "stop": 60}
    assert log == ["battery BAT0: charge thresholds set to start 40, stop 60"]


@given(cached=cached_pairs, ec=pairs, target=pairs)
def test_every_target_is_set_from_any_cached_pair_and_any_ec_pair(
    cached: tuple[int, int], ec: tuple[int, int], target: tuple[int, int]
) -> None:
    kernel = ThinkpadAcpi(cached, ec)
    limit = bt.Limit("BAT0", *target)
    assert bt.apply(kernel, [limit], lambda _: None) == [], (cached, ec, target)
    assert (kernel.cached_start, kernel.cached_stop) == target
    assert (kernel._read("BAT0", "start"), kernel._read("BAT0", "stop")) == target


@pytest.mark.parametrize(
    ("driver", "text", "message"),
    [
        ("tpacpi-bat", "3:40:90", "'3:40:90': tpacpi-bat batteries are 0 (all), 1 or 2"),
        (
            "tpacpi-bat",
            "1:40:100",
            "'1:40:100': tpacpi-bat takes 1-99 percent, or 0 for the default",
        ),
        ("tpacpi-bat", "1:90:40", "'1:90:40': start must be below stop"),
        ("natacpi", "BAT0:0:0", "'BAT0:0:0': natacpi takes start 0-99 and stop 1-100"),
        ("natacpi", "../x:40:80", "'../x:40:80': '../x' is not a power supply name such as BAT0"),
        ("natacpi", "BAT0:80:80", "'BAT0:80:80': start must be below stop"),
        ("natacpi", "BAT0:40", "'BAT0:40' is not BATTERY:START:STOP"),
        ("natacpi", "BAT0:-1:80", "'BAT0:-1:80': start and stop must be whole percentages"),
    ],
)
def test_bad_limits_are_refused(driver: str, text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        bt.parse_limit(text, driver)
    assert str(err.value) == message


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bt.main(["--driver", "natacpi", "BAT0:90:40"])
    assert exit_.value.code == 2
    assert "start must be below stop" in capsys.readouterr().err
