"""A fake CloudStack management server API (stdlib HTTP on localhost) for the `kvmfleet cloudstack`
tests, written from the server's source (4.22) rather than from the client library, and as strict
as the server where kvmfleet could get it wrong. Each rule names the class it follows:

- authentication as ApiServer.verifyRequest does it: parameter names sorted, the `signature`
  parameter left out, each value through java.net.URLEncoder (UTF-8; letters, digits and `.-*_`
  kept, space as `+` which the server turns into `%20`, `~` as `%7E`), the whole string
  lower-cased, HMAC-SHA1 with the user's secret key, Base64; `signatureVersion=3` requires
  `expires` in the future, in a format DateUtil.parseTZDateString reads;
- command names are exact (ApiServer's s_apiNameCmdClassMap is a HashMap keyed by the
  @APICommand name: `listzones` is no command); an unknown command is refused by verifyRequest
  like a bad signature: ApiServlet answers 401 "unable to verify user credentials and/or request
  signature" through ApiServer.getSerializedApiError(int, ...), an ExceptionResponse without
  `cserrorcode`, named `errorresponse` for an unknown command and `<command>response` otherwise;
- answers as ApiResponseSerializer.toJSONSerializedString writes them: `{"<command>response": ...}`
  with the command name lower-cased; lists (ListResponse) as `{"count": N, "<object>": [...]}`
  where N is the total (not the page's length), `{"count": N}` for a page past the end, `{}` when
  N is 0; asynchronous commands as `{"jobid": ...}`; other errors as ExceptionResponse (`uuidList`,
  `errorcode`, `cserrorcode`, `errortext`) with the HTTP status equal to the error code
  (ApiErrorCode: 401, 431, 530, ...); `application/json; charset=UTF-8` only with `response=json`;
- paging as BaseListCmd: `page` and `pagesize` come together (431 otherwise), `pagesize` at most
  default.page.size (500 unless the test lowers `max_page_size`; 431 "Page size can't exceed max
  allowed page size value: N"), and without them at most that many items;
- asynchronous commands fail in their job, not in the HTTP answer (ApiAsyncJobDispatcher.runJob):
  queryAsyncJobResult says jobstatus 2, jobresultcode 530 and a jobresult ExceptionResponse with
  `errorcode` and `errortext`. prepareHostForMaintenance of a host in Maintenance,
  PrepareForMaintenance or ErrorInPrepareForMaintenance fails that way
  (ResourceState.canAttemptMaintenance, ResourceManagerImpl.maintain: "Host is already in state X.
  Cannot recall for maintenance until resolved.");
- the resource states as ResourceState's state machine and ResourceManagerImpl.attemptMaintain
  move them: the prepare job finishes while the host is still PrepareForMaintenance (guests
  migrate afterwards), then Maintenance; ErrorInPrepareForMaintenance while migrations fail,
  which is not final (attemptMaintain keeps trying: Maintenance, back to PrepareForMaintenance, or
  ErrorInMaintenance once it gives up); cancelHostMaintenance back to Enabled from any maintenance
  state; addHost synchronous, refused for a known address or a cluster of another Host.OS
  (LibvirtServerDiscoverer).
Failures can be injected per command: an error code, a dropped connection, a delay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPE = "application/json; charset=UTF-8"
UNAUTHORIZED_TEXT = "unable to verify user credentials and/or request signature"


def java_url_encode(value: str) -> str:
    """java.net.URLEncoder.encode(value, "UTF-8") followed by .replaceAll("\\+", "%20")."""
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        if ch.isascii() and (ch.isalnum() or ch in ".-*_"):
            out.append(ch)
        elif ch == " ":
            out.append("%20")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def server_signature(params: dict[str, str], secret: str) -> str:
    names = sorted(params)  # Collections.sort: by UTF-16 code unit, case-sensitive
    unsigned = "&".join(
        f"{name}={java_url_encode(params[name])}" for name in names if name.lower() != "signature"
    )
    digest = hmac.new(secret.encode(), unsigned.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _parse_expires(text: str) -> datetime | None:
    """DateUtil.parseTZDateString (4.22): ISO offset date-time, yyyy-MM-dd'T'HH:mm:ssZ, with
    microseconds, or the legacy yyyy-MM-dd'T'HH:mm:ss'Z'Z."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%SZ%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


@dataclass
class Host:
    id: str
    name: str
    ip: str
    zone: int
    pod: int
    cluster: int
    version: str = "4.22.0.0"
    host_os: str = "NixOS"
    state: str = "Up"
    resource_state: str = "Enabled"
    host_tags: str = ""
    guests: int = 2
    # What attemptMaintain makes of the guests: "ok" (they migrate), "stuck" (stays
    # PrepareForMaintenance), "error" (ErrorInPrepareForMaintenance, retrying for ever),
    # "recover" (ErrorInPrepareForMaintenance for error_polls polls, then the retries succeed:
    # Maintenance), "give-up" (ErrorInPrepareForMaintenance, then ErrorInMaintenance).
    maintenance: str = "ok"
    polls_to_maintenance: int = 3
    error_polls: int = 3
    reconnect: list[tuple[str, str]] = field(default_factory=list)  # (state, version) per poll


@dataclass
class Job:
    id: str
    cmd: str
    host: str
    polls_left: int
    action: str  # "prepare", "cancel"
    error: tuple[int, str] | None = None


@dataclass
class Place:
    number: int
    uuid: str
    name: str
    hypervisor: str = "KVM"


COMMAND_CLASSES = {
    "prepare": "org.apache.cloudstack.api.command.admin.host.PrepareForMaintenanceCmd",
    "cancel": "org.apache.cloudstack.api.command.admin.host.CancelMaintenanceCmd",
}
# The @APICommand names, exactly: ApiServer.verifyRequest looks the name up case-sensitively.
KNOWN = {
    "listZones",
    "listPods",
    "listClusters",
    "listHosts",
    "listVirtualMachines",
    "addHost",
    "prepareHostForMaintenance",
    "cancelHostMaintenance",
    "queryAsyncJobResult",
}
# ResourceState.canAttemptMaintenance: prepareHostForMaintenance is refused in these.
NO_MAINTENANCE_ATTEMPT = ("Maintenance", "PrepareForMaintenance", "ErrorInPrepareForMaintenance")
# ResourceState.isMaintenanceState: cancelHostMaintenance is accepted in these only.
MAINTENANCE_STATES = (*NO_MAINTENANCE_ATTEMPT, "ErrorInMaintenance")
# CSExceptionErrorCode of the exceptions the fake raises synchronously.
CS_ERROR_CODES = {431: 4350, 530: 4250}


class FakeCloudStack:
    """State and behaviour of the fake; `url` once started (use as a context manager)."""

    def __init__(self, api_key: str, secret_key: str, *, port: int = 0) -> None:
        self.users = {api_key: secret_key}
        self.port = port  # 0: any free port
        self.zones = [Place(1, str(uuid.uuid4()), "zone-ams")]
        self.pods = [Place(1, str(uuid.uuid4()), "pod-a")]
        self.clusters = [Place(1, str(uuid.uuid4()), "nixos-cluster")]
        self.hosts: dict[str, Host] = {}
        self.jobs: dict[str, Job] = {}
        self.job_polls = 2  # queryAsyncJobResult answers "running" this many times
        self.max_page_size = 500  # default.page.size
        self.errors: dict[str, list[tuple[int, str]]] = {}  # command -> errors to answer, in order
        self.drops: dict[str, int] = {}  # command -> connections to drop
        self.delays: dict[str, float] = {}  # command -> seconds before answering
        self.add_host_version = "4.22.0.0"
        self.add_host_os = "NixOS"
        self.deployed: list[str] = []
        self.cancelled_with: list[tuple[str, str, str]] = []  # host, agent state, version
        self.requests: list[dict[str, str]] = []  # every request's parameters, as received
        self.methods: list[str] = []
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- setup helpers ---------------------------------------------------------------------------

    def add_place(self, kind: str, number: int, name: str) -> Place:
        place = Place(number, str(uuid.uuid4()), name)
        {"zone": self.zones, "pod": self.pods, "cluster": self.clusters}[kind].append(place)
        return place

    def add(self, name: str, ip: str, cluster: int = 1, **kw: Any) -> Host:
        host = Host(str(uuid.uuid4()), name, ip, 1, 1, cluster, **kw)
        self.hosts[host.id] = host
        return host

    def by_name(self, name: str) -> Host:
        return next(h for h in self.hosts.values() if h.name == name or h.ip == name)

    def commands(self) -> list[tuple[str, str]]:
        """(command, host name) of every state-changing call, in order."""
        out = []
        for params in self.requests:
            command = params.get("command", "")
            if command in ("prepareHostForMaintenance", "cancelHostMaintenance"):
                host = self.hosts.get(params.get("id", ""))
                out.append((command, host.name if host else "?"))
        return out

    def fail(self, command: str, code: int, text: str) -> None:
        self.errors.setdefault(command, []).append((code, text))

    def upgrade(self, name: str, version: str) -> None:
        """What a deploy that restarts the agent looks like from the management server."""
        host = self.by_name(name)
        host.reconnect = [("Disconnected", host.version), ("Connecting", version), ("Up", version)]

    # --- server ----------------------------------------------------------------------------------

    def __enter__(self) -> FakeCloudStack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake.handle(self, "")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fake.handle(self, self.rfile.read(length).decode())

        self._server = _QuietServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/client/api"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def handle(self, request: BaseHTTPRequestHandler, body: str) -> None:
        query = request.path.partition("?")[2]
        if request.path.startswith("/fake/upgrade"):
            # Test hook for deploy commands run as subprocesses: "the agent restarts with VERSION".
            control = dict(parse_qsl(query))
            with self.lock:
                self.upgrade(control["host"], control["version"])
                self.deployed.append(control["host"])
            request.send_response(204)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        params: dict[str, str] = {}
        # The servlet's parameter map: query string and form body, URL-decoded as UTF-8.
        for text in (query, body):
            params.update(parse_qsl(text, keep_blank_values=True))
        key = params.get("command", "")
        with self.lock:
            self.requests.append(dict(params))
            self.methods.append(request.command)
            if self.drops.get(key, 0) > 0:
                self.drops[key] -= 1
                request.close_connection = True
                request.connection.shutdown(2)  # no answer at all
                return
            delay = self.delays.get(key, 0.0)
        if delay:
            time.sleep(delay)
        status, answer = self.dispatch(params)
        json_wanted = params.get("response") == "json"
        payload = json.dumps(answer) if json_wanted else "<xml>unsupported by the fake</xml>"
        data = payload.encode()
        request.send_response(status)
        request.send_header("Content-Type", JSON_TYPE if json_wanted else "text/xml; charset=UTF-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def dispatch(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        command = params.get("command", "")
        response = f"{command.lower()}response" if command in KNOWN else "errorresponse"
        # verifyRequest returns false for an unknown command before it looks at the signature.
        if command not in KNOWN or not self.verify(params):
            return 401, {response: _exception(401, UNAUTHORIZED_TEXT, cs_error=None)}
        with self.lock:
            queued = self.errors.get(command)
            if queued:
                code, text = queued.pop(0)
                return code, self.error(response, code, text)
            try:
                body = getattr(self, f"cmd_{command.lower()}")(params)
            except ApiFailureError as exc:
                return exc.code, self.error(response, exc.code, exc.text)
        return 200, {response: body}

    def verify(self, params: dict[str, str]) -> bool:
        signature = next((v for k, v in params.items() if k.lower() == "signature"), None)
        api_key = next((v for k, v in params.items() if k.lower() == "apikey"), None)
        if signature is None or api_key is None or api_key not in self.users:
            return False
        version = next((v for k, v in params.items() if k.lower() == "signatureversion"), None)
        if version == "3":
            expires_text = next((v for k, v in params.items() if k.lower() == "expires"), None)
            expires = _parse_expires(expires_text) if expires_text else None
            if expires is None or expires < datetime.now(UTC):
                return False
        expected = server_signature(params, self.users[api_key])
        return hmac.compare_digest(signature, expected)

    @staticmethod
    def error(response: str, code: int, text: str) -> dict[str, Any]:
        """A ServerApiException through getSerializedApiError(ex, ...): with its cserrorcode."""
        return {response: _exception(code, text, cs_error=CS_ERROR_CODES.get(code, 9999))}

    # --- commands --------------------------------------------------------------------------------

    def listing(
        self, object_name: str, items: list[dict[str, Any]], params: dict[str, str]
    ) -> dict[str, Any]:
        """One page of a list as BaseListCmd pages it and ApiResponseSerializer writes it."""
        page_text, size_text = params.get("page"), params.get("pagesize")
        if size_text is not None and page_text is None and size_text != "-1":
            raise ApiFailureError(431, '"page" parameter is required when "pagesize" is specified')
        if page_text is not None and size_text is None:
            raise ApiFailureError(431, '"pagesize" parameter is required when "page" is specified')
        try:
            page = int(page_text) if page_text is not None else 1
            size = int(size_text) if size_text is not None else self.max_page_size
        except ValueError:
            raise ApiFailureError(
                431, "Unable to execute API command due to invalid value: page/pagesize"
            ) from None
        if size > self.max_page_size:
            raise ApiFailureError(
                431, f"Page size can't exceed max allowed page size value: {self.max_page_size}"
            )
        if size == -1:
            if page_text is not None:
                raise ApiFailureError(
                    431, "Can't specify page parameter when pagesize is -1 (Unlimited)"
                )
            chosen = items
        else:
            start = size * (page - 1) if page > 0 else 0
            chosen = items[start : start + size]
        if not items:
            return {}
        if not chosen:
            return {"count": len(items)}
        return {"count": len(items), object_name: chosen}

    def find_place(self, places: list[Place], value: str, param: str) -> Place | None:
        if value.isdigit():
            return next((p for p in places if p.number == int(value)), None)
        if not _is_uuid(value):
            raise ApiFailureError(
                431,
                f"Invalid parameter {param} value={value} due to incorrect long value format, or entity "
                "does not exist or due to incorrect parameter annotation for the field in api cmd class.",
            )
        return next((p for p in places if p.uuid == value), None)

    def _list_places(self, places: list[Place], params: dict[str, str], obj: str) -> dict[str, Any]:
        chosen = places
        if "id" in params:
            found = self.find_place(places, params["id"], "id")
            chosen = [found] if found else []
        items = [{"id": p.uuid, "name": p.name} for p in chosen]
        if obj == "cluster":  # ClusterResponse
            for item, p in zip(items, chosen, strict=True):
                item.update(hypervisortype=p.hypervisor, clustertype="CloudManaged")
        return self.listing(obj, items, params)

    def cmd_listzones(self, params: dict[str, str]) -> dict[str, Any]:
        return self._list_places(self.zones, params, "zone")

    def cmd_listpods(self, params: dict[str, str]) -> dict[str, Any]:
        return self._list_places(self.pods, params, "pod")

    def cmd_listclusters(self, params: dict[str, str]) -> dict[str, Any]:
        return self._list_places(self.clusters, params, "cluster")

    def host_response(self, host: Host, details: bool) -> dict[str, Any]:
        zone = next(p for p in self.zones if p.number == host.zone)
        pod = next(p for p in self.pods if p.number == host.pod)
        cluster = next(p for p in self.clusters if p.number == host.cluster)
        out: dict[str, Any] = {
            "id": host.id,
            "name": host.name,
            "state": host.state,
            "type": "Routing",
            "ipaddress": host.ip,
            "zoneid": zone.uuid,
            "zonename": zone.name,
            "podid": pod.uuid,
            "podname": pod.name,
            "version": host.version,
            "hypervisor": "KVM",
            "clusterid": cluster.uuid,
            "clustername": cluster.name,
            "clustertype": "CloudManaged",
            "resourcestate": host.resource_state,
        }
        if host.host_tags:
            out["hosttags"] = host.host_tags
        if details:  # HostJoinDaoImpl: details=all on KVM hosts
            out["details"] = {"Host.OS": host.host_os, "Host.OS.Version": "26.05"}
        return out

    def _advance(self, host: Host) -> None:
        """One poll's worth of time for a host: guests migrate away, agents reconnect."""
        if host.resource_state == "PrepareForMaintenance":
            if host.maintenance == "ok":
                host.guests = max(0, host.guests - 1)
                host.polls_to_maintenance -= 1
                if host.polls_to_maintenance <= 0 and host.guests == 0:
                    host.resource_state = "Maintenance"
            elif host.maintenance in ("error", "recover", "give-up"):
                host.resource_state = "ErrorInPrepareForMaintenance"  # UnableToMigrate
        elif host.resource_state == "ErrorInPrepareForMaintenance" and host.maintenance in (
            "recover",
            "give-up",
        ):
            # attemptMaintain runs again: its migration retries succeed, go on, or run out.
            host.error_polls -= 1
            if host.error_polls <= 0 and host.maintenance == "recover":
                host.guests = 0
                host.resource_state = "Maintenance"  # InternalEnterMaintenance
            elif host.error_polls <= 0:
                host.resource_state = "ErrorInMaintenance"  # UnableToMaintain
        if host.reconnect:
            host.state, host.version = host.reconnect.pop(0)

    def cmd_listhosts(self, params: dict[str, str]) -> dict[str, Any]:
        chosen = []
        for host in self.hosts.values():
            self._advance(host)
            if params.get("type", "Routing") != "Routing":
                continue
            if "id" in params and params["id"] != host.id:
                continue
            if "name" in params and params["name"] != host.name:
                continue
            if "clusterid" in params:
                cluster = self.find_place(self.clusters, params["clusterid"], "clusterid")
                if cluster is None or cluster.number != host.cluster:
                    continue
            chosen.append(self.host_response(host, params.get("details") == "all"))
        return self.listing("host", chosen, params)

    def cmd_listvirtualmachines(self, params: dict[str, str]) -> dict[str, Any]:
        host = self.hosts.get(params.get("hostid", ""))
        vms = []
        if host is not None and params.get("state", "Running") == "Running":
            vms = [
                {
                    "id": f"{host.id[:8]}-vm{i}",
                    "name": f"vm{i}",
                    "state": "Running",
                    "hostid": host.id,
                }
                for i in range(host.guests)
            ]
        return self.listing("virtualmachine", vms, params)

    def cmd_addhost(self, params: dict[str, str]) -> dict[str, Any]:
        for required in ("zoneid", "podid", "url", "hypervisor"):  # AddHostCmd: required = true
            if required not in params:
                raise ApiFailureError(
                    431,
                    f"Unable to execute API command addhost due to missing parameter {required}",
                )
        zone = self.find_place(self.zones, params["zoneid"], "zoneid")
        pod = self.find_place(self.pods, params.get("podid", ""), "podid")
        cluster = self.find_place(self.clusters, params.get("clusterid", ""), "clusterid")
        if zone is None or pod is None or cluster is None:
            raise ApiFailureError(431, "Unable to find the zone, pod or cluster")
        ip = params["url"].removeprefix("http://").removeprefix("https://")
        if any(h.ip == ip for h in self.hosts.values()):
            raise ApiFailureError(530, f"Host with IP {ip} is already added")
        in_cluster = [h for h in self.hosts.values() if h.cluster == cluster.number]
        if in_cluster and in_cluster[0].host_os.lower() != self.add_host_os.lower():
            raise ApiFailureError(
                530,
                f"Can't add host: {ip} with hostOS: {self.add_host_os} into a cluster,in which there are "
                f"{in_cluster[0].host_os} hosts added",
            )
        host = self.add(
            f"host-{ip}",
            ip,
            cluster.number,
            version=self.add_host_version,
            host_os=self.add_host_os,
            host_tags=params.get("hosttags", ""),
            guests=0,
        )
        host.zone, host.pod = zone.number, pod.number
        return self.listing("host", [self.host_response(host, False)], {})

    def _start_job(self, params: dict[str, str], action: str) -> dict[str, Any]:
        host = self.hosts.get(params.get("id", ""))
        if host is None:
            raise ApiFailureError(431, "Unable to find host by id")
        job = Job(str(uuid.uuid4()), action, host.id, self.job_polls, action)
        # The checks run in the job (ApiAsyncJobDispatcher): the HTTP answer is a jobid anyway.
        if action == "prepare":
            if host.resource_state in NO_MAINTENANCE_ATTEMPT:
                job.error = (
                    530,
                    f"Host is already in state {host.resource_state}. Cannot recall for "
                    "maintenance until resolved.",
                )
            else:
                host.resource_state = "PrepareForMaintenance"  # AdminAskMaintenance
        if action == "cancel":
            self.cancelled_with.append((host.name, host.state, host.version))
        if action == "cancel" and host.resource_state not in MAINTENANCE_STATES:
            job.error = (
                530,
                f"Cannot perform cancelMaintenance when resource state is {host.resource_state}",
            )
        self.jobs[job.id] = job
        return {"jobid": job.id}

    def cmd_preparehostformaintenance(self, params: dict[str, str]) -> dict[str, Any]:
        return self._start_job(params, "prepare")

    def cmd_cancelhostmaintenance(self, params: dict[str, str]) -> dict[str, Any]:
        return self._start_job(params, "cancel")

    def cmd_queryasyncjobresult(self, params: dict[str, str]) -> dict[str, Any]:
        job = self.jobs.get(params.get("jobid", ""))
        if job is None:
            raise ApiFailureError(431, "Unable to find a job by id")
        host = self.hosts[job.host]
        cmd = COMMAND_CLASSES[job.action]
        base: dict[str, Any] = {
            "accountid": "a1",
            "userid": "u1",
            "cmd": cmd,
            "jobinstancetype": "Host",
            "jobinstanceid": host.id,
            "created": "2026-11-29T08:00:00+0000",
            "jobid": job.id,
        }
        if job.polls_left > 0:
            job.polls_left -= 1
            return {**base, "jobstatus": 0, "jobprocstatus": 0, "jobresultcode": 0}
        if job.error is not None:
            code, text = job.error
            return {
                **base,
                "jobstatus": 2,
                "jobprocstatus": 0,
                "jobresultcode": code,
                "jobresulttype": "object",
                "jobresult": _exception(code, text, cs_error=None),
            }
        if job.action == "cancel" and host.resource_state != "Enabled":
            host.resource_state = "Enabled"
        return {
            **base,
            "jobstatus": 1,
            "jobprocstatus": 0,
            "jobresultcode": 0,
            "jobresulttype": "object",
            "jobresult": {"host": self.host_response(host, False)},
            "completed": "2026-11-29T08:00:05+0000",
        }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # dropped connections are deliberate


class ApiFailureError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _exception(code: int, text: str, *, cs_error: int | None) -> dict[str, Any]:
    """ExceptionResponse as Gson writes it: null fields (cserrorcode when unset) left out."""
    out: dict[str, Any] = {"uuidList": [], "errorcode": code}
    if cs_error is not None:
        out["cserrorcode"] = cs_error
    out["errortext"] = text
    return out


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
