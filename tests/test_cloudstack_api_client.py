"""The API client against the fake management server: signatures by the server's rules, POST
only, errors as one line, retries only where safe."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_cloudstack import (
    UNAUTHORIZED_TEXT,
    FakeCloudStack,
    java_url_encode,
    server_signature,
)
from kvmfleet.cloudstack_api.client import (
    ApiError,
    Client,
    ConnectionFailedError,
    Credentials,
    signature,
)
from kvmfleet.cloudstack_api.client import (
    java_url_encode as client_encode,
)
from kvmfleet.cloudstack_api.jobs import Clock, JobTimeoutError, run_async
from kvmfleet.cloudstack_api.records import Resolver, list_hosts

KEY = "test-api-key-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET = "test-secret-key-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"


@pytest.fixture
def fake() -> Iterator[FakeCloudStack]:
    with FakeCloudStack(KEY, SECRET) as server:
        yield server


def client(fake: FakeCloudStack, secret: str = SECRET, **kw: object) -> Client:
    return Client(fake.url, Credentials(KEY, secret), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def test_encoding_matches_java_urlencoder() -> None:
    for text in ["a b", "~x", "a*b", "a+b", "ä/€", "A-Z_0.9", "=&?"]:
        assert client_encode(text) == java_url_encode(text)
    assert client_encode("~") == "%7E"
    assert client_encode(" ") == "%20"


def test_signature_matches_the_server() -> None:
    params = {"command": "listHosts", "apiKey": KEY, "name": "a b~c", "response": "json"}
    assert signature(params, SECRET) == server_signature(params, SECRET)


def test_signed_post_request(fake: FakeCloudStack) -> None:
    answer = client(fake).call("listZones", {"id": "1", "name": "x y~z"}, safe=True)
    assert [z["name"] for z in answer["zone"]] == ["zone-ams"]
    assert fake.methods == ["POST"]
    sent = fake.requests[0]
    assert sent["signatureVersion"] == "3" and "expires" in sent
    assert sent["response"] == "json"


def test_tilde_in_a_value_is_signed_as_the_server_expects(fake: FakeCloudStack) -> None:
    fake.add("kvm~01", "10.0.10.21")
    hosts = list_hosts(client(fake), name="kvm~01")
    assert [h.name for h in hosts] == ["kvm~01"]


def test_wrong_secret_is_a_401_line_without_credentials(fake: FakeCloudStack) -> None:
    with pytest.raises(ApiError) as info:
        client(fake, secret="wrong").call("listZones", safe=True)
    message = str(info.value)
    assert message == (
        "listZones: CloudStack error 401: unable to verify user credentials and/or request signature"
    )
    assert info.value.code == 401
    assert KEY not in message and SECRET not in message


def test_expired_request_is_refused(fake: FakeCloudStack) -> None:
    past = {"expires": "2020-01-01T00:00:00+0000", "signatureVersion": "3"}
    with pytest.raises(ApiError, match="error 401"):
        client(fake).call("listZones", past, safe=True)


def test_unreadable_expires_is_refused(fake: FakeCloudStack) -> None:
    with pytest.raises(ApiError, match="error 401"):
        client(fake).call("listZones", {"expires": "tomorrow", "signatureVersion": "3"}, safe=True)
    future = {"expires": "2099-01-01T00:00:00Z+0000", "signatureVersion": "3"}  # legacy format
    assert client(fake).call("listZones", future, safe=True)["count"] == 1


def test_error_code_and_text(fake: FakeCloudStack) -> None:
    fake.fail("listHosts", 530, "Internal error executing command")
    with pytest.raises(ApiError) as info:
        client(fake).call("listHosts", safe=True)
    assert str(info.value) == "listHosts: CloudStack error 530: Internal error executing command"


def test_dropped_connection_is_retried_for_safe_calls(fake: FakeCloudStack) -> None:
    fake.drops["listZones"] = 2
    assert client(fake).call("listZones", safe=True)["count"] == 1
    assert len(fake.requests) == 3


def test_dropped_connection_is_not_retried_for_unsafe_calls(fake: FakeCloudStack) -> None:
    fake.drops["addHost"] = 1
    with pytest.raises(ConnectionFailedError, match="not retried"):
        client(fake).call("addHost", {"zoneid": "1"}, safe=False)
    assert len(fake.requests) == 1


def test_retries_give_up(fake: FakeCloudStack) -> None:
    fake.drops["listZones"] = 10
    with pytest.raises(ConnectionFailedError, match=r"connection dropped .*4 attempts"):
        client(fake).call("listZones", safe=True)


def test_nobody_listening() -> None:
    c = Client("http://127.0.0.1:9/client/api", Credentials(KEY, SECRET), sleep=lambda s: None)
    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        c.call("listZones", safe=True)


def test_slow_answer_times_out(fake: FakeCloudStack) -> None:
    fake.delays["addHost"] = 2.5
    with pytest.raises(
        ConnectionFailedError, match=r"no answer .* within 1 s; it may still be running"
    ):
        client(fake).call("addHost", {"zoneid": "1"}, safe=False, timeout=1)


def test_resolve_numeric_ids(fake: FakeCloudStack) -> None:
    placement = Resolver(client(fake)).placement("1", "1", "1")
    assert placement.cluster.name == "nixos-cluster"
    assert placement.zone.uuid == fake.zones[0].uuid
    with pytest.raises(ApiError, match="CloudStack has no cluster with id 7"):
        Resolver(client(fake)).named("cluster", "7")


def test_async_job_over_several_polls(fake: FakeCloudStack) -> None:
    host = fake.add("kvm01", "10.0.10.21")
    fake.job_polls = 3
    lines: list[str] = []
    result = run_async(
        client(fake),
        "prepareHostForMaintenance",
        {"id": host.id},
        timeout=60,
        interval=0,
        progress=lines.append,
        clock=Clock(sleep=lambda s: None),
    )
    assert result["host"]["resourcestate"] == "PrepareForMaintenance"
    assert len(lines) == 3 and "running" in lines[0]


def test_async_job_failure_and_timeout(fake: FakeCloudStack) -> None:
    host = fake.add("kvm01", "10.0.10.21")
    c = client(fake)
    with pytest.raises(
        ApiError, match="failed: CloudStack error 530: Cannot perform cancelMaintenance"
    ):
        run_async(
            c,
            "cancelHostMaintenance",
            {"id": host.id},
            timeout=60,
            interval=0,
            progress=lambda s: None,
            clock=Clock(sleep=lambda s: None),
        )
    fake.job_polls = 100
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(JobTimeoutError, match="still running after"):
        run_async(
            c,
            "prepareHostForMaintenance",
            {"id": host.id},
            timeout=30,
            interval=0,
            progress=lambda s: None,
            clock=Clock(now=lambda: float(next(ticks)), sleep=lambda s: None),
        )


@given(
    st.dictionaries(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
        st.text(),
        max_size=6,
    )
)
def test_client_and_server_agree_on_any_parameters(params: dict[str, str]) -> None:
    """The client's signature equals the one the server computes (its encoder written from Java's
    URLEncoder), whatever the characters."""
    params = {k: v for k, v in params.items() if k.lower() != "signature"}
    assert signature(params, SECRET) == server_signature(params, SECRET)


# --- the fake is as strict as the server (each rule fails a client that breaks it) ---------------


def raw(fake: FakeCloudStack, params: dict[str, str], secret: str = SECRET) -> tuple[int, Any]:
    """A signed request without the client: the status and the JSON body, as the server sends."""
    signed = {**params, "apiKey": KEY, "response": "json"}
    signed["signature"] = server_signature(signed, secret)
    request = urllib.request.Request(fake.url, urllib.parse.urlencode(signed).encode())
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_unknown_command_and_bad_signature_are_401_without_cserrorcode(
    fake: FakeCloudStack,
) -> None:
    unauthorized = {"uuidList": [], "errorcode": 401, "errortext": UNAUTHORIZED_TEXT}
    # ApiServer.verifyRequest: the command map is case-sensitive; an unknown name is refused
    # like a bad signature, and getSerializedApiError(int, ...) sets no cserrorcode.
    assert raw(fake, {"command": "listzones"}) == (401, {"errorresponse": unauthorized})
    assert raw(fake, {"command": "noSuchCommand"}) == (401, {"errorresponse": unauthorized})
    assert raw(fake, {"command": "listZones"}, "wrong") == (
        401,
        {"listzonesresponse": unauthorized},
    )
    with pytest.raises(ApiError) as info:
        client(fake).call("listzones", safe=True)
    assert info.value.code == 401


def test_lists_are_paged_like_base_list_cmd(fake: FakeCloudStack) -> None:
    for number in range(5):
        fake.add(f"kvm{number}", f"10.0.10.{number + 1}")
    status, body = raw(fake, {"command": "listHosts", "page": "2", "pagesize": "2"})
    assert status == 200
    page = body["listhostsresponse"]
    assert page["count"] == 5 and [h["name"] for h in page["host"]] == ["kvm2", "kvm3"]
    assert raw(fake, {"command": "listHosts", "page": "9", "pagesize": "2"})[1] == {
        "listhostsresponse": {"count": 5}
    }
    status, body = raw(fake, {"command": "listHosts", "page": "1", "pagesize": "501"})
    assert status == 431
    assert body["listhostsresponse"]["errortext"] == (
        "Page size can't exceed max allowed page size value: 500"
    )
    assert raw(fake, {"command": "listHosts", "pagesize": "2"})[0] == 431
    assert raw(fake, {"command": "listHosts", "page": "1"})[0] == 431
    # An empty list is an empty object (no count, no list).
    assert raw(fake, {"command": "listHosts", "name": "none"}) == (200, {"listhostsresponse": {}})


def test_list_all_pages_through_and_follows_a_lower_page_size(fake: FakeCloudStack) -> None:
    for number in range(5):
        fake.add(f"kvm{number}", f"10.0.10.{number + 1}")
    fake.max_page_size = 2  # a zone's default.page.size below kvmfleet's 500
    c = client(fake)
    assert sorted(h.name for h in list_hosts(c)) == [f"kvm{n}" for n in range(5)]
    sizes = [p.get("pagesize") for p in fake.requests if p["command"] == "listHosts"]
    assert sizes == ["500", "2", "2", "2"]
    assert [h.name for h in list_hosts(c, name="kvm3")] == ["kvm3"]


def test_refused_prepare_is_a_failed_job(fake: FakeCloudStack) -> None:
    host = fake.add("kvm01", "10.0.10.21", resource_state="ErrorInPrepareForMaintenance")
    status, body = raw(fake, {"command": "prepareHostForMaintenance", "id": host.id})
    assert status == 200 and "jobid" in body["preparehostformaintenanceresponse"]
    with pytest.raises(ApiError) as info:
        run_async(
            client(fake),
            "prepareHostForMaintenance",
            {"id": host.id},
            timeout=60,
            interval=0,
            progress=lambda s: None,
            clock=Clock(sleep=lambda s: None),
        )
    assert info.value.code == 530
    assert str(info.value).endswith(
        "failed: CloudStack error 530: Host is already in state ErrorInPrepareForMaintenance. "
        "Cannot recall for maintenance until resolved."
    )
    assert host.resource_state == "ErrorInPrepareForMaintenance"
    job = list(fake.jobs.values())[-1]  # the one run_async followed to its end
    answer = raw(fake, {"command": "queryAsyncJobResult", "jobid": job.id})[1]
    result = answer["queryasyncjobresultresponse"]
    assert result["jobstatus"] == 2 and result["jobresultcode"] == 530
    assert set(result["jobresult"]) == {"uuidList", "errorcode", "errortext"}
