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


def test_tpacpi_bat_battery_0_raising_writes_stop_first() -> None:
    fake = FakeTpacpiBat()
    log: list[str] = []
    failures = bt.apply(
        bt.TpacpiBat("tpacpi-bat", fake), _limits("tpacpi-bat", "0:40:90"), log.append
    )
    assert failures == []
    # battery 0 cannot be read: the current starts come from batteries 1 and 2
    assert fake.calls == [
        ["-g", "ST", "1"],
        ["-g", "ST", "2"],
        ["-s", "SP", "0", "90"],
        ["-s", "ST", "0", "40"],
    ]
    assert log == ["battery 0: charge thresholds set to start 40, stop 90"]


def test_tpacpi_bat_lowering_below_current_start_writes_start_first_and_verifies() -> None:
    fake = FakeTpacpiBat(starts={"1": 85})
    failures = bt.apply(bt.TpacpiBat("tpacpi-bat", fake), _limits("tpacpi-bat", "1:40:60"), print)
    assert failures == []
    assert fake.calls == [
        ["-g", "ST", "1"],
        ["-s", "ST", "1", "40"],
        ["-s", "SP", "1", "60"],
        ["-g", "ST", "1"],
        ["-g", "SP", "1"],
    ]


def test_tpacpi_bat_refusal_is_reported_and_other_batteries_still_set() -> None:
    fake = FakeTpacpiBat(broken=["2"])
    log: list[str] = []
    backend = bt.TpacpiBat("tpacpi-bat", fake)
    failures = bt.apply(backend, _limits("tpacpi-bat", "2:40:90", "1:40:90"), log.append)
    assert failures == [
        "battery 2: `tpacpi-bat -s SP 2 90` failed: Error: AE_NOT_FOUND",
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
    assert record.read_text().splitlines() == ["-g ST 1", "-g ST 2", "-s SP 0 90", "-s ST 0 40"]
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


class Kernel:
    """thinkpad_acpi's rule: a start above the current stop and a stop below the current start
    are refused."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def write(self, what: str, value: int) -> bool:
        if what == "start":
            if value > self.stop:
                return False
            self.start = value
        else:
            if value < self.start:
                return False
            self.stop = value
        return True


pairs = st.integers(0, 99).flatmap(
    lambda start: st.tuples(st.just(start), st.integers(start + 1, 100))
)


@given(current=pairs, target=pairs)
def test_write_order_is_accepted_by_the_kernel_from_any_state(
    current: tuple[int, int], target: tuple[int, int]
) -> None:
    kernel = Kernel(*current)
    limit = bt.Limit("BAT0", *target)
    for what, value in bt.write_order(kernel.start, limit):
        assert kernel.write(what, value), (current, target, what, value)
    assert (kernel.start, kernel.stop) == target


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
