"""`kvmfleet cloudstack status|add|rolling-upgrade`: the command line over this package.

Exit codes: 0 done / nothing to report; 1 findings (status), a refusal (add: nothing changed) or an
upgrade stopped at a host (rolling-upgrade: resumable); 2 errors (inventory, credentials, API).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kvmfleet.cloudstack_api import add as adding
from kvmfleet.cloudstack_api import deploy as deploying
from kvmfleet.cloudstack_api import rolling, status
from kvmfleet.cloudstack_api.client import ApiError
from kvmfleet.cloudstack_api.jobs import Clock
from kvmfleet.cloudstack_api.records import CsHost
from kvmfleet.cloudstack_api.targets import Clients, CommandError, Target, read_password, targets
from kvmfleet.generate import Fleet, build, plan
from kvmfleet.output import stale

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

DESCRIPTION = """\
Drive the CloudStack management server from the inventory. The API endpoint and the files holding
the API and secret keys come from [cloudstack.api] (usually [roles.hypervisor.cloudstack.api] in
site.toml); zone, pod and cluster are the inventory's database ids, resolved through the API.

exit codes: 0 ok; 1 findings (status), refused (add) or stopped at a host (rolling-upgrade);
2 errors (inventory, credentials, API).
"""

EPILOG = """\
examples:
  kvmfleet cloudstack status                    every CloudStack host of the inventory
  kvmfleet cloudstack status kvm01 --json
  kvmfleet cloudstack add kvm03 --dry-run       print the addHost call
  kvmfleet cloudstack add kvm03
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --dry-run
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --deploy colmena
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --resume
"""


def add_parser(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Register `cloudstack` and its subcommands on the main parser's subparsers."""
    cs = sub.add_parser(
        "cloudstack",
        help="fleet status, Add Host and rolling upgrades through the CloudStack API",
        formatter_class=fmt,
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    actions = cs.add_subparsers(dest="cs_command", required=True, metavar="ACTION")

    st = actions.add_parser(
        "status",
        help="each host's CloudStack record against the inventory",
        formatter_class=fmt,
        description="For each inventory host with [cloudstack] (or the named ones): its CloudStack host\n"
        "record, matched by IP address then name, its state, resource state, agent version and\n"
        "running guests; findings for what disagrees with the inventory and for hosts CloudStack\n"
        "has in the inventory's clusters that the inventory lacks. Exit 1 on findings.",
    )
    st.add_argument("hosts", nargs="*", metavar="HOST")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    ad = actions.add_parser(
        "add",
        help="addHost for an inventory host",
        formatter_class=fmt,
        description="Add HOST to its zone, pod and cluster (addHost, hypervisor KVM, user root). The\n"
        "management server logs in with its own SSH key (which the inventory puts in root's\n"
        "authorized keys); --password sends root's password from cloudstack.api.password_file\n"
        "instead. Refused when the host is already registered, when its generated configuration is\n"
        "not fresh (as `generate --check` sees it), or when the cluster holds hosts of another OS.",
    )
    ad.add_argument("host", metavar="HOST")
    ad.add_argument("--dry-run", action="store_true", help="print the call, change nothing")
    ad.add_argument("--password", action="store_true", help="log in with root's password file")
    ad.add_argument("--json", action="store_true", help="print the new host record as JSON")
    ad.add_argument(
        "--timeout", type=float, default=900.0, metavar="S", help="addHost timeout (default 900)"
    )

    ru = actions.add_parser(
        "rolling-upgrade",
        help="upgrade a cluster one host at a time through maintenance",
        formatter_class=fmt,
        description="For each inventory host of CloudStack cluster NAME, one at a time:\n"
        "prepareHostForMaintenance; wait until CloudStack reports Maintenance (guests migrated);\n"
        "deploy; wait until the agent is Up with the inventory's version; cancelHostMaintenance.\n"
        "Stops at the first failure and leaves that host in maintenance; --resume continues.",
    )
    ru.add_argument("--cluster", required=True, metavar="NAME", help="CloudStack cluster name")
    ru.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ru.add_argument("--resume", action="store_true", help="continue a stopped upgrade")
    ru.add_argument(
        "--deploy",
        choices=("nixos-rebuild", "colmena"),
        default="nixos-rebuild",
        help="nixos-rebuild switch --flake .#HOST --target-host root@ADDR (default), or "
        "colmena apply --on HOST switch",
    )
    ru.add_argument(
        "--deploy-command",
        metavar="CMD",
        help="a command of your own instead, with {host} and {address} placeholders",
    )
    ru.add_argument("--maintenance-timeout", type=float, default=3600.0, metavar="S")
    ru.add_argument("--agent-timeout", type=float, default=900.0, metavar="S")
    ru.add_argument("--job-timeout", type=float, default=600.0, metavar="S")
    ru.add_argument("--poll", type=float, default=10.0, metavar="S", help="seconds between polls")
    ru.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, root: Path, fleet: Fleet | None = None) -> int:
    """Carry out `kvmfleet cloudstack ...`; inventory errors propagate (InventoryError, exit 2)."""
    fleet = fleet or build(root)  # the whole fleet must be valid, as for generate
    clients = Clients()
    try:
        if args.cs_command == "status":
            return _status(fleet, args, clients)
        if args.cs_command == "add":
            return _add(fleet, args, clients)
        return _rolling(root, fleet, args, clients)
    except (CommandError, ApiError) as exc:
        print(f"kvmfleet: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _status(fleet: Fleet, args: argparse.Namespace, clients: Clients) -> int:
    chosen = targets(fleet, args.hosts)
    if not chosen:
        raise CommandError("no host of the inventory has a [cloudstack] table")
    report = status.collect(chosen, clients, targets(fleet))
    if args.json:
        print(json.dumps(status.as_json(report), indent=2))
    else:
        sys.stdout.write(status.text(report))
        for finding in report.findings:
            print(f"finding: {finding}")
    return EXIT_FINDINGS if report.findings else EXIT_OK


def _one(fleet: Fleet, name: str) -> Target:
    return targets(fleet, [name])[0]


def _add(fleet: Fleet, args: argparse.Namespace, clients: Clients) -> int:
    target = _one(fleet, args.host)
    client = clients.for_api(target.api)
    not_fresh = stale(plan(fleet, [target.name]))  # the rule of `generate --check`
    password = (
        (target.api.password_file or "", read_password(target.api)) if args.password else None
    )
    try:
        add_plan = adding.plan_add(client, target, stale=not_fresh, password=password)
    except adding.Refused as exc:
        print(f"kvmfleet: refused: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    if args.dry_run:
        print(add_plan.describe())
        return EXIT_OK
    host = adding.add(client, add_plan, progress=say, timeout=args.timeout)
    if args.json:
        print(json.dumps(_host_json(host), indent=2))
    else:
        print(
            f"{target.name}: added as {host.name} ({host.id}), {host.state}, "
            f"cluster {host.cluster_name}"
        )
    return EXIT_OK


def _host_json(host: CsHost) -> dict[str, Any]:
    return asdict(host)


def _deploy(root: Path, args: argparse.Namespace) -> deploying.Deploy:
    if args.deploy_command:
        return deploying.custom(root, args.deploy_command)
    if args.deploy == "colmena":
        return deploying.colmena(root)
    return deploying.nixos_rebuild(root)


def _rolling(root: Path, fleet: Fleet, args: argparse.Namespace, clients: Clients) -> int:
    chosen = targets(fleet)
    if not chosen:
        raise CommandError("no host of the inventory has a [cloudstack] table")
    # One management server per cluster: the first host's API (hosts of other APIs are not in it).
    client = clients.for_api(chosen[0].api)
    same_api = [t for t in chosen if t.api == chosen[0].api]
    options = rolling.Options(
        job_timeout=args.job_timeout,
        maintenance_timeout=args.maintenance_timeout,
        agent_timeout=args.agent_timeout,
        poll=args.poll,
    )
    engine = rolling.Rolling(client, _deploy(root, args), options, progress=say, clock=Clock())
    cluster_id, members = engine.members(args.cluster, same_api)
    path = rolling.state_path(root, args.cluster)
    if path.exists() and not args.resume:
        previous = rolling.State.load(path)
        raise CommandError(
            f"an upgrade of cluster {args.cluster} stopped at {previous.current} (step {previous.step}): "
            f"--resume continues it; or remove {path} to start over"
        )
    if args.resume and not path.exists():
        raise CommandError(f"nothing to resume: no {path}")
    names = [m.target.name for m in members]
    state = (
        rolling.State.load(path) if args.resume else rolling.State(args.cluster, cluster_id, names)
    )
    if state.cluster_id != cluster_id or set(state.done) - set(names):
        raise CommandError(
            f"{path} describes another cluster or other hosts; remove it to start over"
        )
    state.hosts = names
    engine.check_one_at_a_time(members, state.current)
    if args.dry_run:
        print("\n".join(engine.plan(args.cluster, members, state)))
        return EXIT_OK
    try:
        engine.run(members, state, path)
    except rolling.Stopped as exc:
        print(f"kvmfleet: stopped: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps(rolling.summary(state, members), indent=2))
        return EXIT_FINDINGS
    path.unlink()
    if args.json:
        print(json.dumps(rolling.summary(state, members), indent=2))
    else:
        print(f"cluster {args.cluster}: {len(state.done)} host(s) upgraded")
    return EXIT_OK
