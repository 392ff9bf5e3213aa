"""Benchmark: `kvmfleet generate` on synthetic fleets of hypervisors modelled on the demo kvm01.

    ./dev bench [--hosts 10,100,1000] [--repeat 5]

For each fleet size and repetition, makes a fresh fleet in a git work tree (inputs committed, as a
user's are; the cache needs one) and runs the real command line (a new Python process each time,
start-up included, as a user runs it):
  cold       `kvmfleet generate` with no generated file and no cache yet (then committed)
  unchanged  `kvmfleet generate` again with nothing changed
  one host   `kvmfleet generate` after one host's address changed (a value fleet checks read)
  site       `kvmfleet generate` after a value at site.toml's top level changed (every host)
(each after a sync, so that no run pays for the set-up's writes) and prints min and median wall
time of --repeat runs, the median CPU time (user + system of the
process and its workers: what a busy machine changes little), and the peak memory: the largest sum
of the resident sizes of the kvmfleet process and its workers (sampled every 10 ms; pages the
forked workers share with their parent are counted in each, so this overstates)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
            # The SAN stays one /16 that holds the iSCSI portal (10.1.0.100).
            .replace("10.1.0.21/24", f"10.1.{a + 10}.{b + 1}/16")
            .replace("10.1.0.22/24", f"10.1.{a + 60}.{b + 1}/16")
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
    cpu: float  # user + system seconds of the process and its workers


def _tree_rss(pid: int) -> int:
    """Resident kB of `pid` and its descendants, from /proc."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with Path(f"/proc/{current}/status").open() as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with Path(f"/proc/{current}/task/{current}/children").open() as children:
                stack += [int(c) for c in children.read().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def kvmfleet(root: Path, *args: str) -> Run:
    """One `kvmfleet` process: wall time and the peak resident size of it and its workers."""
    # The set-up's writes (a thousand files, git's objects) are flushed first: right after such a
    # burst, creating a file costs ten times as much on this project's machine (ext4), which
    # would be the set-up's cost, not the run's.
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "kvmfleet", "--root", str(root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code not in (0, 1):
        raise SystemExit(f"kvmfleet {' '.join(args)} failed ({code}):\n{err.decode()[-2000:]}")
    return Run(elapsed, max(peak[0], usage.ru_maxrss) / 1024, usage.ru_utime + usage.ru_stime)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            *args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


CASES = ("cold", "unchanged", "one host", "site")
# As a user runs it: Python keeps the compiled modules (some sandboxes turn that off).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(count: int, repeat: int) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {case: [] for case in CASES}
    for n in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_fleet(root, count)
            git(root, "init", "-q")
            git(root, "add", "hosts")
            git(root, "commit", "-qm", "fleet")
            runs["cold"].append(kvmfleet(root, "generate"))
            git(root, "add", "hosts")
            git(root, "commit", "-qm", "generated")
            runs["unchanged"].append(kvmfleet(root, "generate"))
            host = root / "hosts" / f"h{(n * 7) % count:04d}" / "host.toml"
            text = host.read_text()
            edited = text.replace(".21/16", ".31/16", 1)
            assert edited != text
            host.write_text(edited)
            runs["one host"].append(kvmfleet(root, "generate"))
            site = root / "hosts" / "site.toml"
            site.write_text(site.read_text().replace('"screen"', '"screen", "htop"', 1))
            runs["site"].append(kvmfleet(root, "generate"))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="10,100,1000", help="comma-separated fleet sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f} at the "
        f"start; seconds min / median of {args.repeat}"
    )
    print(f"{'hosts':>6} " + " ".join(f"{c:>15}" for c in CASES) + f" {'peak':>8}")
    for count in (int(n) for n in args.hosts.split(",")):
        runs = measure(count, args.repeat)
        cells = [
            f"{min(r.seconds for r in runs[k]):6.2f} / {statistics.median(r.seconds for r in runs[k]):5.2f}"
            for k in CASES
        ]
        peak = max(r.peak_mb for rs in runs.values() for r in rs)
        print(
            f"{count:>6} " + " ".join(f"{c:>15}" for c in cells) + f" {peak:>5.0f} MB", flush=True
        )
        cpu = " ".join(f"{statistics.median(r.cpu for r in runs[k]):>15.2f}" for k in CASES)
        print(
            f"{'cpu':>6} {cpu}  (median CPU seconds, user + system, workers included)", flush=True
        )


if __name__ == "__main__":
    main()
