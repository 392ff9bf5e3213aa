"""What `kvmfleet cloudstack status|add|rolling-upgrade` do, between the parsed command line and
the modules that talk to CloudStack: output, refusals, exit codes."""

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
from kvmfleet.output import remove_file, safe_target, stale

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


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
    options = rolling.Options(
        job_timeout=args.job_timeout,
        maintenance_timeout=args.maintenance_timeout,
        agent_timeout=args.agent_timeout,
        poll=args.poll,
    )
    # A cluster belongs to one management server: try each API the inventory names, in order.
    apis = list(dict.fromkeys(t.api for t in chosen))
    for number, api in enumerate(apis, 1):
        engine = rolling.Rolling(
            clients.for_api(api), _deploy(root, args), options, progress=say, clock=Clock()
        )
        try:
            cluster_id, members = engine.members(args.cluster, [t for t in chosen if t.api == api])
            break
        except rolling.NotHere:
            if number == len(apis):
                raise
    path = rolling.state_path(root, args.cluster)
    try:
        # The state is read, written and removed here: never through a link to elsewhere.
        safe_target(root, path)
    except OSError as exc:
        raise CommandError(f"{exc.filename}: {exc.strerror}") from None
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
    not_fresh = stale(plan(fleet, names))  # the rule of `generate --check`
    if not_fresh:
        print(
            f"kvmfleet: refused: {'; '.join(not_fresh)}: run `kvmfleet generate` (and commit) "
            "before rolling it out",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
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
    remove_file(root, path)
    if args.json:
        print(json.dumps(rolling.summary(state, members), indent=2))
    else:
        print(f"cluster {args.cluster}: {len(state.done)} host(s) upgraded")
    return EXIT_OK
