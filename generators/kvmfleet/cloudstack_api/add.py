"""`kvmfleet cloudstack add HOST`: addHost for an inventory host, refused when it is already
registered, when its generated configuration is not fresh, or when the target cluster holds hosts
of another OS (CloudStack refuses a KVM host whose Host.OS differs from the cluster's:
LibvirtServerDiscoverer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvmfleet.cloudstack_api.client import ADD_HOST_TIMEOUT, Client, JsonObject, ParamValue
from kvmfleet.cloudstack_api.records import CsHost, Placement, Resolver, list_hosts
from kvmfleet.cloudstack_api.status import match
from kvmfleet.cloudstack_api.targets import Target

# What the agent on NixOS reports as Host.OS: the agent's versions.sh takes DISTRIB_ID from
# /etc/lsb-release, which NixOS writes as "nixos". CloudStack compares it case-insensitively.
NIXOS_HOST_OS = "nixos"


class Refused(Exception):  # noqa: N818 -- a decision, not an error
    """kvmfleet will not add the host (nothing was changed): one line, exit 1."""


@dataclass(frozen=True)
class AddPlan:
    target: Target
    placement: Placement
    params: dict[str, ParamValue]
    password_from: str | None  # the file the password comes from, if any

    def describe(self) -> str:
        shown = {
            k: (f"<from {self.password_from}>" if k == "password" and self.password_from else v)
            for k, v in self.params.items()
        }
        args = " ".join(f"{k}={'' if v is None else v}" for k, v in shown.items())
        return f"addHost {args}"


def host_url(address: str) -> str:
    """addHost's `url`: the management server connects to this address (IPv6 in brackets)."""
    return f"http://[{address}]" if ":" in address else f"http://{address}"


def other_os(hosts: list[CsHost]) -> list[CsHost]:
    return [h for h in hosts if h.host_os and h.host_os.strip().lower() != NIXOS_HOST_OS]


def plan_add(
    client: Client,
    target: Target,
    *,
    stale: list[str],
    password: tuple[str, str] | None,
) -> AddPlan:
    """The addHost call for `target`, or Refused. `stale`: its generated files that are not fresh
    (the same rule as `generate --check`); `password`: (file, value) for the explicit fallback."""
    if stale:
        raise Refused(
            f"{target.name}: {'; '.join(stale)}: run `kvmfleet generate` and deploy the host before "
            "adding it to CloudStack"
        )
    placement = Resolver(client).placement(target.cs.zone, target.cs.pod, target.cs.cluster)
    if placement.cluster.hypervisor and placement.cluster.hypervisor != "KVM":
        raise Refused(
            f"{target.name}: cluster {placement.cluster} is a {placement.cluster.hypervisor} cluster, "
            "not KVM"
        )
    known, how = match(target, list_hosts(client))
    if known is not None:
        raise Refused(
            f"{target.name}: already registered as {known.name} ({known.id}, matched by {how}, "
            f"cluster {known.cluster_name})"
        )
    foreign = other_os(list_hosts(client, clusterid=placement.cluster.uuid))
    if foreign:
        found = ", ".join(f"{h.name} ({h.host_os})" for h in foreign)
        raise Refused(
            f"{target.name}: cluster {placement.cluster} holds hosts of another OS: {found}; "
            "CloudStack refuses mixed Host.OS in a KVM cluster: give NixOS hosts a cluster of their own"
        )
    params: dict[str, ParamValue] = {
        "zoneid": placement.zone.uuid,
        "podid": placement.pod.uuid,
        "clusterid": placement.cluster.uuid,
        "hypervisor": "KVM",
        "url": f"http://[{target.address}]"
        if ":" in target.address
        else f"http://{target.address}",
        "username": "root",
        # Empty: the management server logs in with its own SSH key (the UI's "System SSH Key"),
        # which the inventory puts in root's authorized keys.
        "password": password[1] if password else "",
        "hosttags": ",".join(target.cs.host_tags) or None,
    }
    return AddPlan(target, placement, params, password[0] if password else None)


def add(
    client: Client,
    plan: AddPlan,
    *,
    progress: Callable[[str], None],
    timeout: float = ADD_HOST_TIMEOUT,
) -> CsHost:
    progress(
        f"{plan.target.name}: addHost (waits for the agent to connect; up to {int(timeout)} s)"
    )
    answer: JsonObject = client.call("addHost", plan.params, safe=False, timeout=timeout)
    hosts = answer.get("host")
    if isinstance(hosts, list) and hosts and isinstance(hosts[0], dict):
        return CsHost.parse(hosts[0])
    return CsHost.parse(answer)
