"""`kvmfleet cloudstack status`: each inventory host's CloudStack record, matched by IP address then
name (the API does not expose the agent's GUID), compared with the inventory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kvmfleet.cloudstack_api.client import Client
from kvmfleet.cloudstack_api.records import CsHost, Placement, Resolver, list_hosts, running_guests
from kvmfleet.cloudstack_api.targets import Clients, Target, version_matches

# Agent states that mean the management server cannot reach the agent.
_UNHEALTHY = {"Alert", "Disconnected", "Down", "Error"}
_RESOURCE_ERRORS = {"ErrorInPrepareForMaintenance", "ErrorInMaintenance", "Error"}


@dataclass
class HostStatus:
    name: str
    record: CsHost | None
    matched_by: str  # "IP address 10.0.10.21", "name kvm01", or "" (not registered)
    placement: Placement
    guests: int | None = None
    findings: list[str] = field(default_factory=list)


@dataclass
class Report:
    hosts: list[HostStatus]
    unknown: list[CsHost]  # in the inventory's clusters, but not in the inventory

    @property
    def findings(self) -> list[str]:
        out = [f"{h.name}: {f}" for h in self.hosts for f in h.findings]
        out += [
            f"{h.name} ({h.ip}, cluster {h.cluster_name}): registered in CloudStack but not in the "
            "inventory"
            for h in self.unknown
        ]
        return out


def match(target: Target, hosts: list[CsHost]) -> tuple[CsHost | None, str]:
    """The CloudStack host of an inventory host: by IP address, then by name."""
    for h in hosts:
        if h.ip and h.ip in target.addresses:
            return h, f"IP address {h.ip}"
    names = target.names()
    for h in hosts:
        if h.name in names:
            return h, f"name {h.name}"
    return None, ""


def compare(target: Target, record: CsHost, placement: Placement) -> list[str]:
    out = []
    for kind, uuid, name in (
        ("zone", record.zone_id, record.zone_name),
        ("pod", record.pod_id, record.pod_name),
        ("cluster", record.cluster_id, record.cluster_name),
    ):
        wanted = getattr(placement, kind)
        if uuid != wanted.uuid:
            out.append(f"{kind}: CloudStack has it in {name}, the inventory says {wanted}")
    if record.ip and target.addresses and record.ip not in target.addresses:
        out.append(
            f"CloudStack knows it at {record.ip}, the inventory's {target.cs.private_nic} has "
            f"{', '.join(target.addresses)}"
        )
    if not version_matches(record.version, target.cs.version):
        out.append(f"agent version {record.version or '?'}, the inventory says {target.cs.version}")
    if record.state in _UNHEALTHY:
        out.append(f"agent state {record.state}")
    if record.resource_state in _RESOURCE_ERRORS:
        out.append(f"resource state {record.resource_state}")
    return out


def collect(targets: list[Target], clients: Clients, everyone: list[Target]) -> Report:
    """The status of `targets`; hosts CloudStack has in their clusters are compared with
    `everyone` (the whole inventory)."""
    report = Report([], [])
    by_client: dict[int, tuple[Client, list[Target]]] = {}
    for t in targets:
        client = clients.for_api(t.api)
        by_client.setdefault(id(client), (client, []))[1].append(t)
    for client, group in by_client.values():
        resolver = Resolver(client)
        hosts = list_hosts(client)
        matched: set[str] = set()
        clusters: set[str] = set()
        for t in group:
            placement = resolver.placement(t.cs.zone, t.cs.pod, t.cs.cluster)
            clusters.add(placement.cluster.uuid)
            record, how = match(t, hosts)
            status = HostStatus(t.name, record, how, placement)
            if record is None:
                status.findings.append(
                    f"not registered in CloudStack (kvmfleet cloudstack add {t.name})"
                )
            else:
                matched.add(record.id)
                status.guests = running_guests(client, record.id)
                status.findings += compare(t, record, placement)
            report.hosts.append(status)
        for other in everyone:
            if other not in group and clients.for_api(other.api) is client:
                record, _ = match(other, hosts)
                if record is not None:
                    matched.add(record.id)
        report.unknown += [h for h in hosts if h.cluster_id in clusters and h.id not in matched]
    return report


def text(report: Report) -> str:
    lines = []
    for h in report.hosts:
        r = h.record
        if r is None:
            lines.append(f"{h.name}: not registered")
            continue
        lines.append(
            f"{h.name}: {r.state}, {r.resource_state}, agent {r.version or '?'}, "
            f"{h.guests} running guest(s), {r.zone_name}/{r.pod_name}/{r.cluster_name} "
            f"(CloudStack host {r.name}, matched by {h.matched_by})"
        )
    for u in report.unknown:
        lines.append(f"{u.name}: in cluster {u.cluster_name}, not in the inventory ({u.ip})")
    return "\n".join(lines) + "\n" if lines else ""


def as_json(report: Report) -> dict[str, Any]:
    def host(h: HostStatus) -> dict[str, Any]:
        return {
            "name": h.name,
            "registered": h.record is not None,
            "matched_by": h.matched_by or None,
            "cloudstack": asdict(h.record) if h.record else None,
            "inventory": {
                "zone": asdict(h.placement.zone),
                "pod": asdict(h.placement.pod),
                "cluster": asdict(h.placement.cluster),
            },
            "running_guests": h.guests,
            "findings": h.findings,
        }

    return {
        "hosts": [host(h) for h in report.hosts],
        "not_in_inventory": [asdict(u) for u in report.unknown],
        "findings": report.findings,
    }
