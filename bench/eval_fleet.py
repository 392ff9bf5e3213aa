"""Benchmark: full NixOS evaluation of a synthetic fleet, per host, with and without shared pkgs.

    . /opt/nixeval/env.sh    # offline: the pinned inputs as local trees (tools/nixeval)
    flock /tmp/nixeval.lock .venv/bin/python bench/eval_fleet.py --hosts 1,4 [--modes ...]

For each mode and each fleet size N, a copy of this flake with N hypervisors modelled on the demo
kvm01 (bench/generate_fleet.py) is evaluated in one `nix eval` process: every host's
`config.system.build.toplevel.drvPath`, as `nix flake check` would. Wall time and peak memory
(maximum resident set size, from GNU time) are measured; the marginal cost per host is the
difference between the largest and the smallest N divided by the difference in hosts.

Modes:
  shared    nixosConfigurations as the flake defines them (one pkgs per platform)
  per-host  the same with the flake's `sharePkgs = true;` switched off: every host imports nixpkgs
  hive      colmenaHive.toplevel (colmena's evaluator builds each node's pkgs from meta.nixpkgs)

The Nix command is `nixt nix` when tools/nixeval's wrapper is installed, else `nix`; the input
overrides come from $NIXEVAL_OVERRIDES and $NIXEVAL_COLMENA_OVERRIDES (empty on a machine with
network access, where the lock's inputs are fetched)."""

from __future__ import annotations

import argparse
import io
import os
import shlex
import shutil
import subprocess
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from generate_fleet import make_fleet
from kvmfleet.cli import main

REPO = Path(__file__).resolve().parent.parent
# what the flake needs to evaluate; hosts/ is replaced by the synthetic fleet
FLAKE_FILES = (
    "flake.nix",
    "flake.lock",
    "lib",
    "modules",
    "pkgs",
    "checks",
    "generators",
    "pyproject.toml",
)
SHARE_ON = "sharePkgs = true;"
SHARE_OFF = "sharePkgs = false;"

EXPRESSIONS = {
    "shared": (
        "nixosConfigurations",
        "cs: toString (map (c: c.config.system.build.toplevel.drvPath) (builtins.attrValues cs))",
    ),
    "per-host": (
        "nixosConfigurations",
        "cs: toString (map (c: c.config.system.build.toplevel.drvPath) (builtins.attrValues cs))",
    ),
    "hive": (
        "colmenaHive",
        "h: toString (map (t: t.drvPath) (builtins.attrValues h.toplevel))",
    ),
}


@dataclass
class Run:
    mode: str
    hosts: int
    seconds: float
    megabytes: float


def make_flake(root: Path, hosts: int, mode: str) -> None:
    for name in FLAKE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy(source, root / name)
    make_fleet(root, hosts)
    sink = io.StringIO()
    with redirect_stdout(sink), redirect_stderr(sink):
        code = main(["--root", str(root), "generate"])
    if code != 0:
        raise SystemExit(f"generate failed with exit code {code}:\n{sink.getvalue()}")
    if mode == "per-host":
        flake = (root / "flake.nix").read_text()
        if SHARE_ON not in flake:
            raise SystemExit(f"flake.nix has no {SHARE_ON!r} to switch off")
        (root / "flake.nix").write_text(flake.replace(SHARE_ON, SHARE_OFF))


def nix_command() -> list[str]:
    nix = ["nixt", "nix"] if shutil.which("nixt") else ["nix"]
    overrides = os.environ.get("NIXEVAL_OVERRIDES", "").split()
    overrides += os.environ.get("NIXEVAL_COLMENA_OVERRIDES", "").split()
    return [*nix, "eval", "--no-eval-cache", "--no-write-lock-file", *overrides]


def evaluate(root: Path, mode: str, hosts: int) -> Run:
    attribute, apply = EXPRESSIONS[mode]
    command = [
        "/usr/bin/time",
        "-f",
        "%e %M",
        "-o",
        str(root / "time"),
        *nix_command(),
        "--raw",
        f"path:{root}#{attribute}",
        "--apply",
        apply,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    drvs = result.stdout.split()
    if len(drvs) != hosts or not all(d.endswith(".drv") for d in drvs):
        raise SystemExit(f"expected {hosts} toplevel derivations, got: {result.stdout[:500]}")
    seconds, kilobytes = (root / "time").read_text().split()[-2:]
    return Run(mode, hosts, float(seconds), int(kilobytes) / 1024)


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", default="1,4", help="fleet sizes, comma-separated")
    parser.add_argument("--modes", default="shared,per-host", help=", ".join(EXPRESSIONS))
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.hosts.split(",")})
    modes = args.modes.split(",")
    if unknown := set(modes) - set(EXPRESSIONS):
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    for mode in modes:
        runs = []
        for hosts in sizes:
            with tempfile.TemporaryDirectory(prefix="kvmfleet-bench-") as tmp:
                make_flake(Path(tmp), hosts, mode)
                run = evaluate(Path(tmp), mode, hosts)
            runs.append(run)
            print(
                f"{mode:8} {hosts:4} hosts: {run.seconds:7.1f} s {run.megabytes:8.0f} MB",
                flush=True,
            )
        if len(runs) > 1:
            first, last = runs[0], runs[-1]
            extra = last.hosts - first.hosts
            print(
                f"{mode:8} marginal: {(last.seconds - first.seconds) / extra:.2f} s and "
                f"{(last.megabytes - first.megabytes) / extra:.0f} MB per host",
                flush=True,
            )


if __name__ == "__main__":
    main_bench()
