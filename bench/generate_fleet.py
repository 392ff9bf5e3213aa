"""Benchmark: validate and generate a synthetic fleet of N hypervisors modelled on the demo kvm01.

    ./dev bench [--hosts N] [--repeat R]

Prints the best wall time of R runs for a full `kvmfleet generate` (load, validate, fleet checks,
render, write) into a fresh directory, and for a second run where nothing changes."""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from kvmfleet.cli import main

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


def timed(root: Path) -> float:
    sink = io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(sink), redirect_stderr(sink):
        code = main(["--root", str(root), "generate"])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"generate failed with exit code {code}:\n{sink.getvalue()}")
    return elapsed


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_fleet(root, args.hosts)
            cold.append(timed(root))
            warm.append(timed(root))
    print(
        f"{args.hosts} hosts: generate {min(cold):.2f} s ({min(cold) / args.hosts * 1000:.1f} ms/host), "
        f"unchanged re-run {min(warm):.2f} s (best of {args.repeat})"
    )


if __name__ == "__main__":
    main_bench()
