"""`kvmfleet cloudstack rolling-upgrade --cluster NAME`: one host at a time, prepareHostForMaintenance,
wait until CloudStack says Maintenance, deploy, wait until the agent is Up with the expected version,
cancelHostMaintenance, next host. Stops at the first failure, leaving that host in maintenance, and
records where it stopped so that `--resume` continues there.

Why not CloudStack's own startRollingMaintenance (RollingMaintenanceManagerImpl): it cancels
maintenance as soon as the host's Maintenance-stage hook reports, without checking which agent came
back; its hooks run through the agent, whose service executor hard-codes /bin/bash and
/bin/systemctl (absent on NixOS) and whose in-process executor dies with the agent when the new
generation restarts it; it disables the whole cluster for the run; and after a failure the host
left in maintenance makes the next run refuse the cluster ("is not enabled") unless forced, which
skips it. See docs/cloudstack-api.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kvmfleet.cloudstack_api.client import ApiError, Client
from kvmfleet.cloudstack_api.deploy import Deploy
from kvmfleet.cloudstack_api.jobs import Clock, run_async
from kvmfleet.cloudstack_api.records import CsHost, Resolver, get_host, list_hosts, running_guests
from kvmfleet.cloudstack_api.status import match
from kvmfleet.cloudstack_api.targets import CommandError, Target, version_matches
from kvmfleet.output import write_atomic

STEPS = ("prepare", "maintenance", "deploy", "agent", "cancel")
# ResourceState.canAttemptMaintenance: CloudStack refuses prepareHostForMaintenance in these (the
# job fails: "Host is already in state X. Cannot recall for maintenance until resolved.").
NO_MAINTENANCE_ATTEMPT = ("Maintenance", "PrepareForMaintenance", "ErrorInPrepareForMaintenance")
WAIT_ADVICE = (
    "the host is left as it is (CloudStack keeps migrating): migrate or stop its guests, then "
    "--resume (it waits again) or cancelHostMaintenance to give up"
)
STATE_DIR = ".kvmfleet"


class NotHere(CommandError):  # noqa: N818 -- a lookup result
    """No inventory host of this management server is in the cluster."""


class Stopped(Exception):  # noqa: N818 -- the expected outcome of a failure, not a bug
    """The upgrade stopped at a host (left as it is, usually in maintenance): one line, exit 1."""


@dataclass(frozen=True)
class Options:
    job_timeout: float = 600.0  # each asynchronous job
    maintenance_timeout: float = 3600.0  # PrepareForMaintenance -> Maintenance (guests migrating)
    agent_timeout: float = 900.0  # after the deploy, until the agent is Up with the new version
    poll: float = 10.0
    stable_polls: int = 3  # consecutive polls the agent must be Up before maintenance is cancelled


@dataclass
class State:
    """What a run has done, saved after every step (the file `--resume` reads)."""

    cluster: str
    cluster_id: str
    hosts: list[str]
    done: list[str] = field(default_factory=list)
    current: str | None = None
    step: str | None = None
    stopped: str | None = None

    def save(self, path: Path) -> None:
        # path is <root>/.kvmfleet/<file> (state_path): neither may be a link.
        write_atomic(path, json.dumps(asdict(self), indent=2) + "\n", root=path.parents[1])

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            raise CommandError(
                f"{path}: not a rolling-upgrade state file kvmfleet can read"
            ) from None


def state_path(root: Path, cluster: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cluster)
    return root / STATE_DIR / f"rolling-upgrade-{safe}.json"


@dataclass(frozen=True)
class Member:
    target: Target
    record: CsHost


class Rolling:
    def __init__(
        self,
        client: Client,
        deploy: Deploy,
        options: Options,
        *,
        progress: Callable[[str], None],
        clock: Clock,
    ) -> None:
        self.client = client
        self.deploy = deploy
        self.options = options
        self.say = progress
        self.clock = clock

    # --- selection and refusals ------------------------------------------------------------------

    def members(self, cluster: str, targets: list[Target]) -> tuple[str, list[Member]]:
        """The inventory hosts in CloudStack cluster `cluster` (by name), in name order, each with
        its CloudStack record; refuses clusters kvmfleet cannot upgrade completely."""
        resolver = Resolver(self.client)
        chosen = [
            t
            for t in targets
            if resolver.named("cluster", t.cs.cluster).name == cluster
            or resolver.named("cluster", t.cs.cluster).uuid == cluster
        ]
        if not chosen:
            raise NotHere(f"no inventory host is in CloudStack cluster {cluster}")
        cluster_id = resolver.named("cluster", chosen[0].cs.cluster).uuid
        in_cluster = list_hosts(self.client, clusterid=cluster_id)
        members = []
        for t in sorted(chosen, key=lambda t: t.name):
            record, _ = match(t, in_cluster)
            if record is None:
                raise CommandError(
                    f"{t.name}: not registered in cluster {cluster}: add it first "
                    f"(kvmfleet cloudstack add {t.name})"
                )
            members.append(Member(t, record))
        known = {m.record.id for m in members}
        strangers = [h.name for h in in_cluster if h.id not in known]
        if strangers:
            raise CommandError(
                f"cluster {cluster} holds hosts the inventory lacks ({', '.join(strangers)}): "
                "kvmfleet upgrades only hosts it deploys"
            )
        return cluster_id, members

    def check_one_at_a_time(self, members: list[Member], current: str | None) -> None:
        """CloudStack lets a second host of a cluster enter maintenance; kvmfleet does not."""
        for m in members:
            if m.target.name == current:
                continue
            r = m.record
            if r.resource_state != "Enabled":
                hint = " (--resume continues a stopped upgrade)" if current is None else ""
                raise CommandError(
                    f"{m.target.name} is {r.resource_state}: only one host of a cluster may be out of "
                    f"service at a time; bring it back first{hint}"
                )
            if r.state != "Up":
                raise CommandError(
                    f"{m.target.name}: agent is {r.state}: the cluster has no room to spare; fix it first"
                )

    # --- the plan ----------------------------------------------------------------------------------

    def plan(self, cluster: str, members: list[Member], state: State) -> list[str]:
        lines = [f"rolling upgrade of cluster {cluster}, one host at a time:"]
        for number, m in enumerate(members, 1):
            t, r = m.target, m.record
            if t.name in state.done:
                lines.append(f"{number}. {t.name}: already upgraded in this run")
                continue
            deploy = " ".join(self.deploy.argv(t))
            lines += [
                f"{number}. {t.name} ({r.ip}, {r.state}/{r.resource_state}, agent {r.version}):",
                f"   prepareHostForMaintenance id={r.id}",
                f"   wait until resourcestate is Maintenance (up to {int(self.options.maintenance_timeout)} s)",
                f"   deploy: {deploy}",
                f"   wait until the agent is Up with version {t.cs.version} "
                f"(up to {int(self.options.agent_timeout)} s)",
                f"   cancelHostMaintenance id={r.id}",
            ]
        return lines

    # --- running -------------------------------------------------------------------------------------

    def run(self, members: list[Member], state: State, path: Path) -> None:
        for m in members:
            name = m.target.name
            if name in state.done:
                continue
            first = self.first_step(m, state) if state.current == name else "prepare"
            state.current, state.stopped = name, None
            for step in STEPS[STEPS.index(first) :] if first != "done" else ():
                state.step = step
                state.save(path)
                try:
                    getattr(self, f"step_{step}")(m)
                except Stopped as exc:
                    state.stopped = str(exc)
                    state.save(path)
                    raise
                except ApiError as exc:
                    state.stopped = f"{name}: {exc} (during step {step})"
                    state.save(path)
                    raise Stopped(f"{state.stopped}; {self.advice(step)}") from None
                except KeyboardInterrupt:
                    state.stopped = f"{name}: interrupted during step {step}"
                    state.save(path)
                    raise Stopped(f"{state.stopped}; {self.advice(step)}") from None
            state.done.append(name)
            state.current = state.step = None
            state.save(path)
            self.say(f"{name}: upgraded ({len(state.done)} of {len(members)})")

    def first_step(self, m: Member, state: State) -> str:
        """Where a resumed host continues, from what CloudStack says now."""
        rs = get_host(self.client, m.record.id).resource_state
        step = state.step or "prepare"
        if rs == "Enabled":
            return "done" if step == "cancel" else "prepare"
        if rs in ("PrepareForMaintenance", "ErrorInPrepareForMaintenance"):
            # Not final: ResourceManagerImpl.attemptMaintain keeps retrying the migrations, and
            # a second prepareHostForMaintenance would be refused. Wait again.
            return "maintenance"
        if rs == "ErrorInMaintenance":
            return "prepare"  # CloudStack gave up; it accepts a new prepare (AdminAskMaintenance)
        if rs == "Maintenance":
            return "cancel" if step == "cancel" else "deploy"
        raise Stopped(
            f"{m.target.name} is {rs}: resolve that in CloudStack first, then run --resume again"
        )

    def advice(self, step: str) -> str:
        if step == "prepare":
            return "the host may be in PrepareForMaintenance: check `kvmfleet cloudstack status`, then --resume"
        if step == "cancel":
            return "the host is upgraded but may still be in maintenance: --resume cancels it"
        return "the host stays in maintenance: fix the cause, then --resume"

    def wait(
        self,
        m: Member,
        timeout: float,
        done: Callable[[CsHost], str | None],
        what: str,
        advice: str,
    ) -> CsHost:
        """Poll the host until `done` says "ok" (or raises Stopped); Stopped on timeout."""
        start = self.clock.now()
        while True:
            host = get_host(self.client, m.record.id)
            verdict = done(host)
            if verdict == "ok":
                return host
            elapsed = self.clock.now() - start
            if elapsed >= timeout:
                raise Stopped(
                    f"{m.target.name}: {what} not reached after {int(elapsed)} s ({verdict}); {advice}"
                )
            self.say(f"{m.target.name}: {verdict} ({int(elapsed)} s)")
            self.clock.sleep(self.options.poll)

    def step_prepare(self, m: Member) -> None:
        rs = get_host(self.client, m.record.id).resource_state
        if rs in NO_MAINTENANCE_ATTEMPT:
            return
        self.say(f"{m.target.name}: prepareHostForMaintenance")
        run_async(
            self.client,
            "prepareHostForMaintenance",
            {"id": m.record.id},
            timeout=self.options.job_timeout,
            interval=self.options.poll,
            progress=lambda line: self.say(f"{m.target.name}: {line}"),
            clock=self.clock,
        )

    def step_maintenance(self, m: Member) -> None:
        name = m.target.name

        def done(host: CsHost) -> str | None:
            rs = host.resource_state
            if rs == "Maintenance":
                return "ok"
            if rs == "ErrorInMaintenance":
                # UnableToMaintain: attemptMaintain has run out of migration retries.
                guests = running_guests(self.client, host.id)
                raise Stopped(
                    f"{name}: ErrorInMaintenance: CloudStack gave up migrating {guests} guest(s) "
                    "away; the host is left as it is: migrate or stop them, then --resume "
                    "(prepareHostForMaintenance again) or cancelHostMaintenance to give up"
                )
            if rs == "ErrorInPrepareForMaintenance":
                # UnableToMigrate: not final, attemptMaintain retries and may still reach
                # Maintenance (or go back to PrepareForMaintenance, or give up).
                guests = running_guests(self.client, host.id)
                return f"{rs} (CloudStack retries the migrations), {guests} guest(s) still running"
            if rs != "PrepareForMaintenance":
                raise Stopped(
                    f"{name}: left maintenance ({rs}) while guests migrated; --resume starts over"
                )
            return f"{rs}, {running_guests(self.client, host.id)} guest(s) still running"

        # The prepare job finishing is not enough: the guests migrate after it.
        self.wait(m, self.options.maintenance_timeout, done, "Maintenance", WAIT_ADVICE)
        self.say(f"{name}: in maintenance")

    def step_deploy(self, m: Member) -> None:
        name = m.target.name
        self.say(f"{name}: deploying: {' '.join(self.deploy.argv(m.target))}")
        status = self.deploy(m.target)
        if status != 0:
            raise Stopped(
                f"{name}: deploy failed (exit status {status}); the host stays in maintenance without "
                "guests: fix the cause, then --resume (deploys again), or cancel its maintenance in "
                "CloudStack to return it to service unchanged"
            )

    def step_agent(self, m: Member) -> None:
        wanted = m.target.cs.version
        seen = 0

        def done(host: CsHost) -> str | None:
            nonlocal seen
            if host.state == "Up" and version_matches(host.version, wanted):
                seen += 1
                if seen >= self.options.stable_polls:
                    return "ok"
            else:
                seen = 0
            return (
                f"agent {host.state}, version {host.version or '?'} (waiting for Up with {wanted})"
            )

        start = self.clock.now()
        try:
            self.wait(m, self.options.agent_timeout, done, f"agent Up with {wanted}", "")
        except Stopped:
            host = get_host(self.client, m.record.id)
            raise Stopped(
                f"{m.target.name}: the agent is {host.state} with version {host.version or '?'} "
                f"{int(self.clock.now() - start)} s after the deploy, expected Up with {wanted}; "
                "maintenance is not cancelled (that would make the management server restart the agent "
                "over SSH): check cloudstack-agent on the host, then --resume"
            ) from None

    def step_cancel(self, m: Member) -> None:
        self.say(f"{m.target.name}: cancelHostMaintenance")
        run_async(
            self.client,
            "cancelHostMaintenance",
            {"id": m.record.id},
            timeout=self.options.job_timeout,
            interval=self.options.poll,
            progress=lambda line: self.say(f"{m.target.name}: {line}"),
            clock=self.clock,
        )
        rs = get_host(self.client, m.record.id).resource_state
        if rs != "Enabled":
            raise Stopped(
                f"{m.target.name}: still {rs} after cancelHostMaintenance; --resume tries again"
            )


def summary(state: State, members: list[Member]) -> dict[str, Any]:
    return {
        "cluster": state.cluster,
        "hosts": [m.target.name for m in members],
        "upgraded": state.done,
        "stopped_at": state.current,
        "step": state.step,
        "message": state.stopped,
    }
