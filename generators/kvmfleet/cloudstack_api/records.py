"""CloudStack's records as typed values: the fields kvmfleet reads from HostResponse and from the
zone/pod/cluster responses (their serialized names)."""

from __future__ import annotations

from dataclasses import dataclass

from kvmfleet.cloudstack_api.client import ApiError, Client, JsonObject


def _text(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Named:
    """A zone, pod or cluster: the API's UUID and name, and the database id the inventory uses."""

    kind: str
    number: str
    uuid: str
    name: str
    hypervisor: str = ""  # clusters: ClusterResponse's hypervisortype

    def __str__(self) -> str:
        return f"{self.name} (id {self.number})"


@dataclass(frozen=True)
class Placement:
    zone: Named
    pod: Named
    cluster: Named


@dataclass(frozen=True)
class CsHost:
    """A host record of listHosts (type Routing)."""

    id: str
    name: str
    ip: str
    state: str  # Up, Connecting, Disconnected, Alert, Down, ...
    resource_state: str  # Enabled, PrepareForMaintenance, Maintenance, ErrorIn..., Disabled
    version: str  # the agent's version
    zone_id: str
    zone_name: str
    pod_id: str
    pod_name: str
    cluster_id: str
    cluster_name: str
    host_os: str  # details["Host.OS"] (listHosts details=all, KVM only); "" if unknown
    host_tags: str

    @classmethod
    def parse(cls, obj: JsonObject) -> CsHost:
        details = obj.get("details")
        host_os = details.get("Host.OS", "") if isinstance(details, dict) else ""
        return cls(
            id=_text(obj, "id"),
            name=_text(obj, "name"),
            ip=_text(obj, "ipaddress"),
            state=_text(obj, "state"),
            resource_state=_text(obj, "resourcestate"),
            version=_text(obj, "version"),
            zone_id=_text(obj, "zoneid"),
            zone_name=_text(obj, "zonename"),
            pod_id=_text(obj, "podid"),
            pod_name=_text(obj, "podname"),
            cluster_id=_text(obj, "clusterid"),
            cluster_name=_text(obj, "clustername"),
            host_os=host_os if isinstance(host_os, str) else "",
            host_tags=_text(obj, "hosttags"),
        )


_LISTS = {"zone": "listZones", "pod": "listPods", "cluster": "listClusters"}


def resolve(client: Client, kind: str, number: str) -> Named:
    """The zone, pod or cluster with database id `number`: `id` of these list commands accepts the
    internal id (a pre-3.x parameter) as well as the UUID."""
    command = _LISTS[kind]
    found = client.list_all(command, kind, {"id": number})
    if len(found) != 1:
        raise ApiError(command, f"CloudStack has no {kind} with id {number}")
    item = found[0]
    return Named(
        kind, number, _text(item, "id"), _text(item, "name"), _text(item, "hypervisortype")
    )


class Resolver:
    """Resolves each (zone, pod, cluster) id once per run."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._cache: dict[tuple[str, str], Named] = {}

    def named(self, kind: str, number: str) -> Named:
        if (kind, number) not in self._cache:
            self._cache[kind, number] = resolve(self._client, kind, number)
        return self._cache[kind, number]

    def placement(self, zone: str, pod: str, cluster: str) -> Placement:
        return Placement(
            self.named("zone", zone), self.named("pod", pod), self.named("cluster", cluster)
        )


def list_hosts(client: Client, **filters: str) -> list[CsHost]:
    """Hypervisor hosts (type Routing), with details (Host.OS)."""
    params: dict[str, str | int | bool | None] = {"type": "Routing", "details": "all", **filters}
    return [CsHost.parse(h) for h in client.list_all("listHosts", "host", params)]


def get_host(client: Client, host_id: str) -> CsHost:
    found = list_hosts(client, id=host_id)
    if len(found) != 1:
        raise ApiError("listHosts", f"CloudStack has no host with id {host_id}")
    return found[0]


def running_guests(client: Client, host_id: str) -> int:
    vms = client.list_all(
        "listVirtualMachines",
        "virtualmachine",
        {"hostid": host_id, "state": "Running", "listall": True},
    )
    return len(vms)
