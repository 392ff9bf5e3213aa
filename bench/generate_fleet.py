"""Benchmark: `kvmfleet generate` on synthetic fleets of hypervisors modelled on the demo kvm01.

    ./dev bench [--hosts 10,100,1000] [--repeat 5]

For each fleet size, runs the real command line (a new Python process each time, start-up
included, as a user runs it) into a fresh directory:
  cold       `kvmfleet generate` with no generated file yet (validate, fleet checks, render, write)
  unchanged  `kvmfleet generate` again with nothing changed
  check      `kvmfleet generate --check` after an input changed (the full path, writing nothing)
and prints min and median wall time of --repeat runs, and the peak RSS of the largest run."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_fleet(root: Path, count: int) -> None:
    hosts = root / "hosts"
    hosts.mkdir(parents=True)
    shutil.copy(REPO / "hosts" / "site.toml", hosts / "site.toml")
    template = (REPO / "hosts" / "kvm01" / "host.toml").read_text()
    for n in range(count):
        a, b = divmod(n, 250)
        text = template
        for index, old in enumerate(["62:e0", "62:e2", "62:f0", "62:f2"]):
            text = text.replace(f"14:fe:b5:c6:{old}", f"14:fe:{a:02x}:{b:02x}:{index:02x}:01")
        text = (
            text.replace("fe:80:12:04:6d:6f", f"fe:80:12:{a:02x}:{b:02x}:01")
            .replace("10.0.10.21/24", f"10.{a + 20}.{b}.21/16")
            .replace("2a00:f10:113:1::21/64", f"2a00:f10:113:1::21:{a:x}:{b:x}/64")
            .replace("10.1.0.21/24", f"10.{a + 100}.{b}.21/16")
            .replace("10.1.0.22/24", f"10.{a + 100}.{b}.22/16")
            .replace('"10.0.10.1"', f'"10.{a + 20}.0.1"')
            .replace(":kvm01", f":h{n:04d}")
            .replace("2b4e5f6a7c01", f"2b4e5f{n:06x}")
        )
        (hosts / f"h{n:04d}").mkdir()
        (hosts / f"h{n:04d}" / "host.toml").write_text(text)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float


def kvmfleet(root: Path, *args: str) -> Run:
    """One `kvmfleet` process: wall time and its own peak RSS (from wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "kvmfleet", "--root", str(root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code not in (0, 1):
        raise SystemExit(f"kvmfleet {' '.join(args)} failed ({code}):\n{err.decode()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss / 1024)


def measure(count: int, repeat: int) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {"cold": [], "unchanged": [], "check": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_fleet(root, count)
            runs["cold"].append(kvmfleet(root, "generate"))
            runs["unchanged"].append(kvmfleet(root, "generate"))
            site = root / "hosts" / "site.toml"
            site.write_text(site.read_text() + "\n# changed\n")
            runs["check"].append(kvmfleet(root, "generate", "--check"))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="10,100,1000", help="comma-separated fleet sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; seconds min / median of {args.repeat}"
    )
    print(f"{'hosts':>6} {'cold':>15} {'unchanged':>15} {'check':>15} {'peak RSS':>9}")
    for count in (int(n) for n in args.hosts.split(",")):
        runs = measure(count, args.repeat)
        cells = [
            f"{min(r.seconds for r in runs[k]):6.2f} / {statistics.median(r.seconds for r in runs[k]):5.2f}"
            for k in ("cold", "unchanged", "check")
        ]
        peak = max(r.peak_mb for rs in runs.values() for r in rs)
        print(
            f"{count:>6} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {peak:>6.0f} MB", flush=True
        )


if __name__ == "__main__":
    main()
