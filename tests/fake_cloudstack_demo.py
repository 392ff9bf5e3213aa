"""`./dev fake-cloudstack`: the fake management server of the tests (tests/fake_cloudstack.py),
populated from the demo fleet, to try `kvmfleet cloudstack status`, `add` and `rolling-upgrade`
without a CloudStack.

The committed inventory stays as it is: the fleet is copied into a new directory whose site.toml
points `[roles.hypervisor.cloudstack.api]` at the fake (its URL and two key files made for the
run), and the commands run with `--root` on that copy. Every hypervisor but the last is registered
in the fake (Up, Enabled, agent 4.22.0.0), so that `add` has a host to add. A rolling upgrade's
deploy step is this program's `deploy` action: it tells the fake that the host's agent restarts
with the new version, as a real deploy would look from the management server.

  python tests/fake_cloudstack_demo.py [--port N] [--fleet DIR]   serve until interrupted
  python tests/fake_cloudstack_demo.py deploy --url URL ADDRESS     the rolling upgrade's deploy
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import secrets
import shutil
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fake_cloudstack import FakeCloudStack
from kvmfleet.cli import main as kvmfleet_main
from kvmfleet.cloudstack_api.targets import Target, targets
from kvmfleet.generate import build

REPO = Path(__file__).resolve().parent.parent
NEW_VERSION = "4.22.1.1"  # what the demo's deploy step makes the agents report
API_KEYS = {
    "url": lambda demo: demo.fake.url,
    "api_key_file": lambda demo: str(demo.root / "api.key"),
    "secret_key_file": lambda demo: str(demo.root / "secret.key"),
}


class DemoError(Exception):
    """A problem with the fleet to serve: one line, exit 2."""


@dataclass
class Demo:
    fake: FakeCloudStack
    root: Path  # the copy of the fleet (holding hosts/)
    registered: list[str]
    unregistered: list[str]
    cluster: str

    def instructions(self) -> str:
        kvmfleet = f"./dev kvmfleet --root {self.root} cloudstack"
        deploy = (
            f"{sys.executable} {Path(__file__).resolve()} deploy --url {self.fake.url} {{address}}"
        )
        lines = [
            f"fake CloudStack management server: {self.fake.url}",
            f"the demo fleet, pointed at it: {self.root} (the committed hosts/ is unchanged)",
            f"registered: {', '.join(self.registered) or 'none'}; "
            f"not yet: {', '.join(self.unregistered) or 'none'}",
            "try, in another terminal:",
            f"  {kvmfleet} status",
        ]
        for name in self.unregistered:
            lines += [f"  {kvmfleet} add {name} --dry-run", f"  {kvmfleet} add {name}"]
        lines += [
            f"  {kvmfleet} rolling-upgrade --cluster {self.cluster} --dry-run",
            f"  {kvmfleet} rolling-upgrade --cluster {self.cluster} --poll 1 "
            f"--deploy-command '{deploy}'",
            "Ctrl-C stops the server.",
        ]
        return "\n".join(lines)


def _point_at(site: Path, demo: Demo, shown: Path) -> None:
    """Point the copy's API table at the fake (errors name the fleet's own file, `shown`)."""
    text = site.read_text(encoding="utf-8")
    match = re.search(r"(?ms)^\[roles\.hypervisor\.cloudstack\.api\]\n(.*?)(?=^\[|\Z)", text)
    if match is None:
        raise DemoError(f"{shown}: no [roles.hypervisor.cloudstack.api] table to point at the fake")
    table = match.group(1)
    for key, value in API_KEYS.items():
        table, found = re.subn(rf'(?m)^{key} = ".*"$', f'{key} = "{value(demo)}"', table)
        if not found:
            raise DemoError(f"{shown}: [roles.hypervisor.cloudstack.api] has no {key}")
    site.write_text(text[: match.start(1)] + table + text[match.end(1) :], encoding="utf-8")


def _place(fake: FakeCloudStack, kind: str, number: str) -> None:
    places = {"zone": fake.zones, "pod": fake.pods, "cluster": fake.clusters}[kind]
    if not number.isdigit():
        raise DemoError(f"cloudstack.{kind} {number!r}: the fake knows numeric ids only")
    if all(p.number != int(number) for p in places):
        fake.add_place(kind, int(number), f"{kind}-{number}")


def start(fake: FakeCloudStack, fleet: Path, workdir: Path) -> Demo:
    """Copy the fleet to workdir, point it at the started fake, and register its hosts there."""
    if not (fleet / "hosts" / "site.toml").is_file():
        raise DemoError(f"{fleet}: no hosts/site.toml (--fleet names the directory holding hosts/)")
    root = workdir / "fleet"
    shutil.copytree(fleet / "hosts", root / "hosts")
    for name in ("api.key", "secret.key"):
        (root / name).write_text(secrets.token_urlsafe(48) + "\n", encoding="utf-8")
        (root / name).chmod(0o600)
    demo = Demo(fake, root, [], [], "")
    _point_at(root / "hosts" / "site.toml", demo, fleet / "hosts" / "site.toml")
    fake.users = {(root / "api.key").read_text().strip(): (root / "secret.key").read_text().strip()}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if kvmfleet_main(["--root", str(root), "generate"]) != 0:
            raise DemoError(f"{fleet}: kvmfleet generate fails on this fleet; run it there first")
    hypervisors: list[Target] = targets(build(root))
    if not hypervisors:
        raise DemoError(f"{fleet}: no host has a [cloudstack] table")
    for target in hypervisors:
        for kind in ("zone", "pod", "cluster"):
            _place(fake, kind, getattr(target.cs, kind))
    *registered, last = hypervisors
    for target in registered:
        fake.add(target.name, target.address, cluster=int(target.cs.cluster))
    cluster = next(c for c in fake.clusters if c.number == int(last.cs.cluster))
    demo.registered = [t.name for t in registered]
    demo.unregistered = [last.name]
    demo.cluster = cluster.name
    return demo


def deploy(url: str, host: str) -> int:
    """The rolling upgrade's deploy step against the fake: the host's agent comes back with
    NEW_VERSION (`host`: its name or address in the fake; addHost names a host after its
    address, so the deploy command passes {address})."""
    query = urllib.parse.urlencode({"host": host, "version": NEW_VERSION})
    control = url.replace("/client/api", "/fake/upgrade") + "?" + query
    with urllib.request.urlopen(urllib.request.Request(control, b"", method="POST")):
        pass
    print(f"{host}: deployed (the fake's agent restarts with {NEW_VERSION})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dev fake-cloudstack", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--port", type=int, default=0, help="listen on 127.0.0.1:PORT (default: any)"
    )
    parser.add_argument("--fleet", type=Path, default=REPO, help="directory holding hosts/")
    sub = parser.add_subparsers(dest="action")
    dep = sub.add_parser("deploy", help="the rolling upgrade's deploy step (used by kvmfleet)")
    dep.add_argument("--url", required=True)
    dep.add_argument("host")
    args = parser.parse_args(argv)
    if args.action == "deploy":
        return deploy(args.url, args.host)
    workdir = Path(tempfile.mkdtemp(prefix="kvmfleet-fake-cloudstack-"))
    try:
        with FakeCloudStack("", "", port=args.port) as fake:
            try:
                demo = start(fake, args.fleet.resolve(), workdir)
            except DemoError as exc:
                print(f"dev fake-cloudstack: {exc}", file=sys.stderr)
                return 2
            print(demo.instructions(), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
