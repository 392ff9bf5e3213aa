"""`kvmfleet cloudstack status|add|rolling-upgrade` end to end: the demo fleet plus a third
hypervisor, against the fake management server (signatures verified, jobs over several polls,
injected failures)."""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, Run, copy_fleet, run_cli
from fake_cloudstack import FakeCloudStack
from kvmfleet.cloudstack_api.add import host_url
from kvmfleet.cloudstack_api.jobs import Clock
from kvmfleet.cloudstack_api.rolling import Options, Rolling, State, Stopped, state_path
from kvmfleet.cloudstack_api.targets import Clients, Target, targets
from kvmfleet.generate import build

KEY = "kA9_xZ2-qW8eR5tY1uI4oP7aS3dF6gH0jK9lZ2xC5vB8nM1qW4eR7tY0uI3oP6aS9dF2gH5jK8lZ1xC4vB7nM"
SECRET = "sE3_cR4-eT5kE6yV7aL8uE9sZ0xC1vB2nM3qW4eR5tY6uI7oP8aS9dF0gH1jK2lZ3xC4vB5nM6qW7eR8tY9uI"

UPGRADE = (
    f"{shlex.quote(sys.executable)} -c 'import sys, urllib.request; "
    'urllib.request.urlopen(sys.argv[1] + "?host=" + sys.argv[2] + "&version=" + sys.argv[3], b"")\' '
)


@dataclass
class Env:
    root: Path
    fake: FakeCloudStack
    runs: list[Run] = field(default_factory=list)

    def cli(self, *args: str) -> Run:
        result = run_cli("cloudstack", *args, root=self.root)
        self.runs.append(result)
        return result

    def deploy_to(self, version: str) -> str:
        base = self.fake.url.replace("/client/api", "/fake/upgrade")
        return UPGRADE + f"{base} {{host}} {version}"

    def upgrade(self, *extra: str, version: str = "4.22.1.0") -> Run:
        return self.cli(
            "rolling-upgrade",
            "--cluster",
            "nixos-cluster",
            "--deploy-command",
            self.deploy_to(version),
            "--poll",
            "0",
            *extra,
        )


def _kvm03(root: Path) -> None:
    text = (root / "hosts" / "kvm02" / "host.toml").read_text()
    for old, new in [
        ("10.0.10.22", "10.0.10.23"),
        ("::22/", "::23/"),
        ("10.1.0.23/", "10.1.0.33/"),
        ("10.1.0.24/", "10.1.0.34/"),
        ("kvm02", "kvm03"),
    ]:
        text = text.replace(old, new)
    # fresh MACs and GUID
    text = re.sub(r'"((?:[0-9a-f]{2}:){4})[0-9a-f]{2}(:[0-9a-f]{2})"', r'"\g<1>3e\g<2>"', text)
    text = re.sub(r'guid = "[^"]*"', 'guid = "0b3c2f7a-3f1e-4c55-9a51-8f2d7c1e9a03"', text)
    (root / "hosts" / "kvm03").mkdir()
    (root / "hosts" / "kvm03" / "host.toml").write_text(text)


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[Env]:
    monkeypatch.setattr("kvmfleet.cloudstack_api.client.RETRY_BACKOFF", 0.01)
    caplog.set_level(logging.DEBUG)  # whatever the libraries log (urllib3 logs each request)
    root = copy_fleet(REPO / "hosts", tmp_path / "fleet" / "hosts").parent
    _kvm03(root)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api.key").write_text(KEY + "\n")
    (secrets / "secret.key").write_text(SECRET + "\n")
    for key_file in secrets.iterdir():
        key_file.chmod(0o600)
    with FakeCloudStack(KEY, SECRET) as fake:
        site = root / "hosts" / "site.toml"
        # The demo's [roles.hypervisor.cloudstack.api] table, pointed at the fake server.
        text = site.read_text()
        text = re.sub(r'(?m)^url = ".*"$', f'url = "{fake.url}"', text)
        text = re.sub(r'(?m)^api_key_file = ".*"$', f'api_key_file = "{secrets / "api.key"}"', text)
        text = re.sub(
            r'(?m)^secret_key_file = ".*"$', f'secret_key_file = "{secrets / "secret.key"}"', text
        )
        site.write_text(text)
        generated = run_cli("generate", root=root)
        assert generated.code == 0, generated.err
        for number, name in enumerate(("kvm01", "kvm02", "kvm03"), 1):
            fake.add(name, f"10.0.10.2{number}")
        environment = Env(root, fake)
        yield environment
        logged = [r.getMessage() for r in caplog.get_records("call")]
        if environment.fake.requests:  # the capture works: urllib3 logged the requests
            assert any("POST /client/api" in line for line in logged)
        _no_credentials(environment, logged)


def _no_credentials(env: Env, logged: list[str]) -> None:
    assert set(env.fake.methods) <= {"POST"}  # GET would put the key and signature in URLs
    texts = [r.out + r.err for r in env.runs] + logged
    texts += (
        [p.read_text() for p in (env.root / ".kvmfleet").glob("*")]
        if (env.root / ".kvmfleet").is_dir()
        else []
    )
    for text in texts:
        assert KEY not in text and SECRET not in text
        assert KEY[:20] not in text and SECRET[:20] not in text


# --- status ---------------------------------------------------------------------------------------


def test_status_all_registered(env: Env) -> None:
    result = env.cli("status")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        "kvm01: Up, Enabled, agent 4.22.0.0, 2 running guest(s), zone-ams/pod-a/nixos-cluster "
        "(CloudStack host kvm01, matched by IP address 10.0.10.21)"
    )
    assert len(lines) == 3
    assert all(p["command"] != "addHost" for p in env.fake.requests)
    assert set(env.fake.methods) == {"POST"}


def test_status_findings(env: Env) -> None:
    env.fake.add_place("cluster", 2, "rocky-cluster")
    kvm02 = env.fake.by_name("kvm02")
    kvm02.cluster = 2
    kvm02.name, kvm02.ip = "kvm02.cloud.example.net", "10.9.9.9"  # matched by name
    del env.fake.hosts[env.fake.by_name("kvm03").id]
    env.fake.add("legacy01", "10.0.10.99", host_os="Rocky Linux")
    env.fake.by_name("kvm01").state = "Disconnected"
    result = env.cli("status")
    assert result.code == 1, result.err
    findings = [line for line in result.out.splitlines() if line.startswith("finding: ")]
    assert findings == [
        "finding: kvm01: agent state Disconnected",
        "finding: kvm02: cluster: CloudStack has it in rocky-cluster, the inventory says nixos-cluster (id 1)",
        "finding: kvm02: CloudStack knows it at 10.9.9.9, the inventory's cloudbr0 has 10.0.10.22, 2a00:f10:113:1::22",
        "finding: kvm03: not registered in CloudStack (kvmfleet cloudstack add kvm03)",
        "finding: legacy01 (10.0.10.99, cluster nixos-cluster): registered in CloudStack but not in the inventory",
    ]
    assert "matched by name kvm02.cloud.example.net" in result.out


def test_status_json(env: Env) -> None:
    result = env.cli("status", "kvm02", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    [host] = data["hosts"]
    assert host["name"] == "kvm02" and host["matched_by"] == "IP address 10.0.10.22"
    assert host["cloudstack"]["resource_state"] == "Enabled"
    assert host["inventory"]["cluster"]["number"] == "1"
    assert host["running_guests"] == 2
    assert data["findings"] == []


def test_status_unknown_host_and_no_api(env: Env) -> None:
    assert env.cli("status", "nosuch").err == "kvmfleet: no such host in the inventory: nosuch\n"
    result = env.cli("status", "x1carbon")
    assert result.code == 2
    assert result.err == "kvmfleet: x1carbon: no [cloudstack] table (not a CloudStack host)\n"


def test_bad_signature_is_one_line(env: Env, tmp_path: Path) -> None:
    (tmp_path / "secrets" / "secret.key").write_text("not-the-secret\n")
    result = env.cli("status")
    assert result.code == 2
    assert result.err == (
        "kvmfleet: listHosts: CloudStack error 401: unable to verify user credentials and/or "
        "request signature\n"
    )


def test_unreadable_key_file(env: Env, tmp_path: Path) -> None:
    (tmp_path / "secrets" / "api.key").unlink()
    result = env.cli("status")
    assert result.code == 2
    assert result.err == (
        f"kvmfleet: cloudstack.api.api_key_file: cannot read {tmp_path / 'secrets' / 'api.key'}: "
        "No such file or directory\n"
    )


def test_key_file_readable_by_others(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "secret.key"
    secret.chmod(0o644)
    result = env.cli("status")
    assert result.code == 0
    assert result.err == (
        f"warning: cloudstack.api.secret_key_file: {secret} is readable by other users "
        f"(chmod 600 {secret})\n"
    )


def test_internal_error_is_one_line(env: Env) -> None:
    env.fake.fail(
        "listHosts", 530, "Internal error executing command, please contact your administrator"
    )
    result = env.cli("status")
    assert result.code == 2
    assert result.err.splitlines() == [
        "kvmfleet: listHosts: CloudStack error 530: Internal error executing command, please contact "
        "your administrator"
    ]


def test_dropped_connections_on_reads_are_retried(env: Env) -> None:
    env.fake.drops["listHosts"] = 1
    env.fake.drops["listZones"] = 1
    assert env.cli("status").code == 0


# --- add ------------------------------------------------------------------------------------------


def _unregister(env: Env, name: str) -> None:
    del env.fake.hosts[env.fake.by_name(name).id]


def test_add_dry_run_and_add(env: Env) -> None:
    _unregister(env, "kvm03")
    dry = env.cli("add", "kvm03", "--dry-run")
    assert dry.code == 0, dry.err
    zone, pod, cluster = env.fake.zones[0].uuid, env.fake.pods[0].uuid, env.fake.clusters[0].uuid
    assert dry.out == (
        f"addHost zoneid={zone} podid={pod} clusterid={cluster} hypervisor=KVM "
        "url=http://10.0.10.23 username=root password= hosttags=\n"
    )
    assert not any(p["command"] == "addHost" for p in env.fake.requests)
    result = env.cli("add", "kvm03")
    assert result.code == 0, result.err
    assert result.out.startswith("kvm03: added as host-10.0.10.23 (")
    [sent] = [p for p in env.fake.requests if p["command"] == "addHost"]
    assert sent["username"] == "root" and sent["password"] == ""
    assert sent["hypervisor"] == "KVM" and sent["url"] == "http://10.0.10.23"
    assert "hosttags" not in sent
    assert env.cli("status", "kvm03").code == 0


def test_add_uses_the_inventorys_add_host_address(env: Env) -> None:
    _unregister(env, "kvm03")
    host_file = env.root / "hosts" / "kvm03" / "host.toml"
    host_file.write_text(
        host_file.read_text().replace(
            "[cloudstack]\n", '[cloudstack]\nadd_host_address = "2a00:f10:113:1::23"\n'
        )
    )
    generated = run_cli("generate", root=env.root)
    assert generated.code == 0, generated.err
    dry = env.cli("add", "kvm03", "--dry-run")
    assert dry.code == 0, dry.err
    assert " url=http://[2a00:f10:113:1::23] " in dry.out


def test_add_with_host_tags_and_json(env: Env) -> None:
    _unregister(env, "kvm03")
    host_file = env.root / "hosts" / "kvm03" / "host.toml"
    host_file.write_text(
        host_file.read_text().replace(
            "[cloudstack]\n", '[cloudstack]\nhost_tags = ["nixos", "ssd"]\n'
        )
    )
    assert run_cli("generate", root=env.root).code == 0
    result = env.cli("add", "kvm03", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["host_tags"] == "nixos,ssd"


def test_host_url() -> None:
    assert host_url("10.0.10.23") == "http://10.0.10.23"
    assert host_url("2a00:f10:113:1::23") == "http://[2a00:f10:113:1::23]"
    assert host_url("kvm03.cloud.example.net") == "http://kvm03.cloud.example.net"


def test_add_refuses_a_registered_host(env: Env) -> None:
    result = env.cli("add", "kvm02")
    assert result.code == 1
    host = env.fake.by_name("kvm02")
    assert result.err == (
        f"kvmfleet: refused: kvm02: already registered as kvm02 ({host.id}, matched by IP address "
        "10.0.10.22, cluster nixos-cluster)\n"
    )


def test_add_refuses_stale_generated_config(env: Env) -> None:
    _unregister(env, "kvm03")
    host_file = env.root / "hosts" / "kvm03" / "host.toml"
    host_file.write_text(host_file.read_text().replace("mtu = 9000", "mtu = 8000", 1))
    result = env.cli("add", "kvm03")
    assert result.code == 1
    assert result.err == (
        "kvmfleet: refused: kvm03: hosts/kvm03/generated.nix: stale: run `kvmfleet generate` and "
        "deploy the host before adding it to CloudStack\n"
    )
    assert not any(p.get("command") == "addHost" for p in env.fake.requests)


def test_add_refuses_a_cluster_of_another_os(env: Env) -> None:
    _unregister(env, "kvm03")
    for host in env.fake.hosts.values():
        host.host_os = "Rocky Linux"
    result = env.cli("add", "kvm03")
    assert result.code == 1
    assert result.err == (
        "kvmfleet: refused: kvm03: cluster nixos-cluster (id 1) holds hosts of another OS: "
        "kvm01 (Rocky Linux), kvm02 (Rocky Linux); CloudStack refuses mixed Host.OS in a KVM "
        "cluster: give NixOS hosts a cluster of their own\n"
    )


def test_add_refuses_a_cluster_of_another_hypervisor(env: Env) -> None:
    _unregister(env, "kvm03")
    env.fake.clusters[0].hypervisor = "VMware"
    result = env.cli("add", "kvm03")
    assert result.code == 1
    assert result.err == (
        "kvmfleet: refused: kvm03: cluster nixos-cluster (id 1) is a VMware cluster, not KVM\n"
    )


def test_add_slow_answer(env: Env) -> None:
    _unregister(env, "kvm03")
    env.fake.delays["addHost"] = 2.0
    result = env.cli("add", "kvm03", "--timeout", "1")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        f"kvmfleet: addHost: no answer from {env.fake.url} within 1 s; it may still be running: "
        "check before retrying"
    )


def test_add_slow_but_in_time(env: Env) -> None:
    _unregister(env, "kvm03")
    env.fake.delays["addHost"] = 1.0
    assert env.cli("add", "kvm03", "--timeout", "5").code == 0


def test_add_dropped_connection_is_not_retried(env: Env) -> None:
    _unregister(env, "kvm03")
    env.fake.drops["addHost"] = 1
    result = env.cli("add", "kvm03")
    assert result.code == 2
    assert "not retried: it may have taken effect" in result.err
    assert sum(1 for p in env.fake.requests if p["command"] == "addHost") == 1


def test_add_server_refusal(env: Env) -> None:
    _unregister(env, "kvm03")
    env.fake.fail("addHost", 530, "Unable to add the host: Cannot transit agent status with Event")
    result = env.cli("add", "kvm03")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "kvmfleet: addHost: CloudStack error 530: Unable to add the host: Cannot transit agent "
        "status with Event"
    )


def test_add_password_fallback_needs_a_file(env: Env, tmp_path: Path) -> None:
    _unregister(env, "kvm03")
    result = env.cli("add", "kvm03", "--password")
    assert result.code == 2
    assert "needs cloudstack.api.password_file" in result.err
    secret = tmp_path / "secrets" / "root.pw"
    secret.write_text("correct horse battery\n")
    site = env.root / "hosts" / "site.toml"
    text = site.read_text()
    site.write_text(
        re.sub(r"(?m)^(secret_key_file = .*)$", rf'\1\npassword_file = "{secret}"', text)
    )
    dry = env.cli("add", "kvm03", "--password", "--dry-run")
    assert dry.code == 0, dry.err
    assert f"password=<from {secret}>" in dry.out and "horse" not in dry.out
    assert env.cli("add", "kvm03", "--password").code == 0
    [sent] = [p for p in env.fake.requests if p["command"] == "addHost"]
    assert sent["password"] == "correct horse battery"


# --- rolling upgrade --------------------------------------------------------------------------------


def _states(env: Env) -> dict[str, tuple[str, str, str]]:
    return {h.name: (h.state, h.resource_state, h.version) for h in env.fake.hosts.values()}


def test_rolling_upgrade_dry_run(env: Env) -> None:
    result = env.cli("rolling-upgrade", "--cluster", "nixos-cluster", "--dry-run")
    assert result.code == 0, result.err
    kvm01 = env.fake.by_name("kvm01")
    assert result.out.splitlines()[:7] == [
        "rolling upgrade of cluster nixos-cluster, one host at a time:",
        "1. kvm01 (10.0.10.21, Up/Enabled, agent 4.22.0.0):",
        f"   prepareHostForMaintenance id={kvm01.id}",
        "   wait until resourcestate is Maintenance (up to 3600 s)",
        "   deploy: nixos-rebuild switch --flake .#kvm01 --target-host root@10.0.10.21",
        "   wait until the agent is Up with version 4.22 (up to 900 s)",
        f"   cancelHostMaintenance id={kvm01.id}",
    ]
    assert env.fake.commands() == []
    assert not (env.root / ".kvmfleet").exists()


def test_full_rolling_upgrade(env: Env) -> None:
    env.fake.job_polls = 3
    result = env.upgrade()
    assert result.code == 0, result.err
    assert result.out == "cluster nixos-cluster: 3 host(s) upgraded\n"
    assert env.fake.commands() == [
        ("prepareHostForMaintenance", "kvm01"),
        ("cancelHostMaintenance", "kvm01"),
        ("prepareHostForMaintenance", "kvm02"),
        ("cancelHostMaintenance", "kvm02"),
        ("prepareHostForMaintenance", "kvm03"),
        ("cancelHostMaintenance", "kvm03"),
    ]
    assert env.fake.deployed == ["kvm01", "kvm02", "kvm03"]
    # Maintenance was cancelled only once the agent was back Up with the new version.
    assert env.fake.cancelled_with == [(n, "Up", "4.22.1.0") for n in ("kvm01", "kvm02", "kvm03")]
    assert _states(env) == dict.fromkeys(("kvm01", "kvm02", "kvm03"), ("Up", "Enabled", "4.22.1.0"))
    assert "kvm01: PrepareForMaintenance, 1 guest(s) still running" in result.err
    assert "kvm02: upgraded (2 of 3)" in result.err
    assert not (env.root / ".kvmfleet" / "rolling-upgrade-nixos-cluster.json").exists()


def test_stuck_in_prepare_for_maintenance(env: Env) -> None:
    env.fake.by_name("kvm02").maintenance = "stuck"
    result = env.upgrade("--maintenance-timeout", "0.3")
    assert result.code == 1
    stop = result.err.splitlines()[-1]
    assert stop.startswith(
        "kvmfleet: stopped: kvm02: Maintenance not reached after 0 s (PrepareForMaintenance, "
    )
    assert stop.endswith(
        "the host is left as it is (CloudStack keeps migrating): migrate or stop its guests, then "
        "--resume (it waits again) or cancelHostMaintenance to give up"
    )
    assert env.fake.commands() == [
        ("prepareHostForMaintenance", "kvm01"),
        ("cancelHostMaintenance", "kvm01"),
        ("prepareHostForMaintenance", "kvm02"),
    ]
    assert _states(env)["kvm02"][1] == "PrepareForMaintenance"
    state = json.loads((env.root / ".kvmfleet" / "rolling-upgrade-nixos-cluster.json").read_text())
    assert (
        state["done"] == ["kvm01"]
        and state["current"] == "kvm02"
        and state["step"] == "maintenance"
    )


def test_error_in_prepare_then_resume(env: Env) -> None:
    kvm02 = env.fake.by_name("kvm02")
    kvm02.maintenance = "error"
    result = env.upgrade("--maintenance-timeout", "0.3")
    assert result.code == 1
    # ErrorInPrepareForMaintenance is not final (attemptMaintain retries): waited for, to the end.
    assert (
        "kvm02: ErrorInPrepareForMaintenance (CloudStack retries the migrations), 2 guest(s) "
        in (result.err)
    )
    stop = result.err.splitlines()[-1]
    assert stop.startswith(
        "kvmfleet: stopped: kvm02: Maintenance not reached after 0 s (ErrorInPrepareForMaintenance "
    )
    assert stop.endswith(
        "the host is left as it is (CloudStack keeps migrating): migrate or stop its guests, then "
        "--resume (it waits again) or cancelHostMaintenance to give up"
    )
    # Without --resume, a new run refuses: it would start over while kvm02 is out of service.
    again = env.upgrade()
    assert again.code == 2
    assert again.err.splitlines()[-1].startswith(
        "kvmfleet: an upgrade of cluster nixos-cluster stopped at kvm02 (step maintenance): --resume"
    )
    # The administrator moved the guests: CloudStack's next attempt reaches Maintenance.
    kvm02.maintenance, kvm02.error_polls = "recover", 1
    resumed = env.upgrade("--resume")
    assert resumed.code == 0, resumed.err
    # No second prepareHostForMaintenance: CloudStack refuses it in ErrorInPrepareForMaintenance.
    assert env.fake.commands() == [
        ("prepareHostForMaintenance", "kvm01"),
        ("cancelHostMaintenance", "kvm01"),
        ("prepareHostForMaintenance", "kvm02"),
        ("cancelHostMaintenance", "kvm02"),
        ("prepareHostForMaintenance", "kvm03"),
        ("cancelHostMaintenance", "kvm03"),
    ]
    assert env.fake.deployed == ["kvm01", "kvm02", "kvm03"]
    assert all(job.error is None for job in env.fake.jobs.values())


def test_error_in_prepare_settles_within_the_run(env: Env) -> None:
    env.fake.by_name("kvm02").maintenance = "recover"
    result = env.upgrade()
    assert result.code == 0, result.err
    assert "kvm02: ErrorInPrepareForMaintenance (CloudStack retries the migrations)" in result.err
    assert env.fake.deployed == ["kvm01", "kvm02", "kvm03"]


def test_error_in_maintenance_then_resume(env: Env) -> None:
    kvm02 = env.fake.by_name("kvm02")
    kvm02.maintenance, kvm02.error_polls = "give-up", 2
    result = env.upgrade()
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "kvmfleet: stopped: kvm02: ErrorInMaintenance: CloudStack gave up migrating 2 guest(s) away; "
        "the host is left as it is: migrate or stop them, then --resume (prepareHostForMaintenance "
        "again) or cancelHostMaintenance to give up"
    )
    kvm02.maintenance, kvm02.guests = "ok", 0
    resumed = env.upgrade("--resume")
    assert resumed.code == 0, resumed.err
    # ErrorInMaintenance accepts a new prepare (ResourceState: AdminAskMaintenance).
    assert env.fake.commands()[2:5] == [
        ("prepareHostForMaintenance", "kvm02"),
        ("prepareHostForMaintenance", "kvm02"),
        ("cancelHostMaintenance", "kvm02"),
    ]
    assert all(job.error is None for job in env.fake.jobs.values())


def test_deploy_failure_then_resume(env: Env) -> None:
    result = env.cli(
        "rolling-upgrade", "--cluster", "nixos-cluster", "--deploy-command", "false", "--poll", "0"
    )
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "kvmfleet: stopped: kvm01: deploy failed (exit status 1); the host stays in maintenance "
        "without guests: fix the cause, then --resume (deploys again), or cancel its maintenance in "
        "CloudStack to return it to service unchanged"
    )
    assert _states(env)["kvm01"][1] == "Maintenance"
    assert env.fake.commands() == [("prepareHostForMaintenance", "kvm01")]
    resumed = env.upgrade("--resume")
    assert resumed.code == 0, resumed.err
    assert env.fake.commands()[:2] == [
        ("prepareHostForMaintenance", "kvm01"),
        ("cancelHostMaintenance", "kvm01"),
    ]
    assert env.fake.deployed == ["kvm01", "kvm02", "kvm03"]


def test_agent_back_with_the_wrong_version(env: Env) -> None:
    result = env.upgrade("--agent-timeout", "0.3", version="4.20.3.0")
    assert result.code == 1
    stop = result.err.splitlines()[-1]
    assert stop.startswith("kvmfleet: stopped: kvm01: the agent is Up with version 4.20.3.0 ")
    assert stop.endswith(
        "after the deploy, expected Up with 4.22; maintenance is not cancelled (that would make the "
        "management server restart the agent over SSH): check cloudstack-agent on the host, then --resume"
    )
    assert env.fake.commands() == [("prepareHostForMaintenance", "kvm01")]


def test_api_error_during_the_run_is_resumable(env: Env) -> None:
    env.fake.fail("prepareHostForMaintenance", 530, "Internal error executing command")
    result = env.upgrade()
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "kvmfleet: stopped: kvm01: prepareHostForMaintenance: CloudStack error 530: Internal error "
        "executing command (during step prepare); the host may be in PrepareForMaintenance: check "
        "`kvmfleet cloudstack status`, then --resume"
    )
    assert env.upgrade("--resume").code == 0


def test_dropped_connections_during_the_run(env: Env) -> None:
    env.fake.drops["listHosts"] = 2
    env.fake.drops["queryAsyncJobResult"] = 2
    assert env.upgrade().code == 0


def test_one_host_at_a_time(env: Env) -> None:
    env.fake.by_name("kvm03").resource_state = "Maintenance"
    result = env.upgrade()
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "kvmfleet: kvm03 is Maintenance: only one host of a cluster may be out of service at a time; "
        "bring it back first (--resume continues a stopped upgrade)"
    )
    assert env.fake.commands() == []


def test_cluster_with_hosts_the_inventory_lacks(env: Env) -> None:
    env.fake.add("legacy01", "10.0.10.99")
    result = env.upgrade()
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "kvmfleet: cluster nixos-cluster holds hosts the inventory lacks (legacy01): kvmfleet "
        "upgrades only hosts it deploys"
    )


def test_unknown_cluster(env: Env) -> None:
    result = env.cli("rolling-upgrade", "--cluster", "nope", "--dry-run")
    assert result.code == 2
    assert (
        result.err.splitlines()[-1] == "kvmfleet: no inventory host is in CloudStack cluster nope"
    )


def test_rolling_upgrade_refuses_stale_generated_config(env: Env) -> None:
    host_file = env.root / "hosts" / "kvm02" / "host.toml"
    host_file.write_text(host_file.read_text().replace("mtu = 9000", "mtu = 8000", 1))
    result = env.upgrade()
    assert result.code == 1
    assert result.err == (
        "kvmfleet: refused: hosts/kvm02/generated.nix: stale: run `kvmfleet generate` (and commit) "
        "before rolling it out\n"
    )
    assert env.fake.commands() == []


def test_rolling_upgrade_json_summary(env: Env) -> None:
    result = env.upgrade("--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "cluster": "nixos-cluster",
        "hosts": ["kvm01", "kvm02", "kvm03"],
        "upgraded": ["kvm01", "kvm02", "kvm03"],
        "stopped_at": None,
        "step": None,
        "message": None,
    }


@dataclass
class _Interrupting:
    """A deploy step the administrator interrupts with Ctrl-C."""

    def argv(self, target: Target) -> list[str]:
        return ["deploy", target.name]

    def __call__(self, target: Target) -> int:
        raise KeyboardInterrupt


def test_interrupted_run_is_saved_for_resume(env: Env) -> None:
    fleet = build(env.root)
    client = Clients().for_api(targets(fleet)[0].api)
    engine = Rolling(
        client, _Interrupting(), Options(poll=0), progress=lambda s: None, clock=Clock()
    )
    cluster_id, members = engine.members("nixos-cluster", targets(fleet))
    path = state_path(env.root, "nixos-cluster")
    with pytest.raises(Stopped, match=r"kvm01: interrupted during step deploy; the host stays in"):
        engine.run(members, State("nixos-cluster", cluster_id, ["kvm01", "kvm02", "kvm03"]), path)
    saved = State.load(path)
    assert (saved.current, saved.step) == ("kvm01", "deploy")
    assert _states(env)["kvm01"][1] == "Maintenance"
    resumed = env.upgrade("--resume")
    assert resumed.code == 0, resumed.err


def test_cluster_of_a_second_management_server(env: Env, tmp_path: Path) -> None:
    """kvm03 is managed by another CloudStack: its cluster is found through its own API."""
    _unregister(env, "kvm03")
    with FakeCloudStack(KEY, SECRET) as other:
        other.clusters[0].name = "other-cluster"
        other.add("kvm03", "10.0.10.23")
        host_file = env.root / "hosts" / "kvm03" / "host.toml"
        host_file.write_text(
            host_file.read_text()
            + f'\n[cloudstack.api]\nurl = "{other.url}"\n'
            + f'api_key_file = "{tmp_path / "secrets" / "api.key"}"\n'
            + f'secret_key_file = "{tmp_path / "secrets" / "secret.key"}"\n'
        )
        assert run_cli("generate", root=env.root).code == 0
        deploy = UPGRADE + f"{other.url.replace('/client/api', '/fake/upgrade')} {{host}} 4.22.1.0"
        result = env.cli(
            "rolling-upgrade",
            "--cluster",
            "other-cluster",
            "--deploy-command",
            deploy,
            "--poll",
            "0",
        )
        assert result.code == 0, result.err
        assert other.commands() == [
            ("prepareHostForMaintenance", "kvm03"),
            ("cancelHostMaintenance", "kvm03"),
        ]
        assert env.fake.commands() == []


def test_deploy_reaches_the_inventorys_deploy_target(env: Env) -> None:
    host_file = env.root / "hosts" / "kvm01" / "host.toml"
    host_file.write_text(
        host_file.read_text() + '\n[deploy]\ntarget_host = "kvm01.oob.example.net"\n'
    )
    generated = run_cli("generate", root=env.root)
    assert generated.code == 0, generated.err
    result = env.cli("rolling-upgrade", "--cluster", "nixos-cluster", "--dry-run")
    assert result.code == 0, result.err
    assert (
        "   deploy: nixos-rebuild switch --flake .#kvm01 --target-host root@kvm01.oob.example.net"
        in result.out.splitlines()
    )


@pytest.mark.parametrize("link", [".kvmfleet", ".kvmfleet/rolling-upgrade-nixos-cluster.json"])
def test_rolling_upgrade_never_writes_through_a_link(env: Env, tmp_path: Path, link: str) -> None:
    # The state directory (or its file) pointing elsewhere would put the state, and its removal,
    # outside the repository.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if link == ".kvmfleet":
        (env.root / ".kvmfleet").symlink_to(outside)
    else:
        (env.root / ".kvmfleet").mkdir()
        (env.root / link).symlink_to(outside / "state.json")
    result = env.upgrade()
    assert result.code != 0
    assert result.err.splitlines()[-1].startswith(f"kvmfleet: {link}: is a symbolic link:")
    assert "Traceback" not in result.err
    assert list(outside.iterdir()) == []
    assert env.fake.commands() == []  # refused before touching any host
    (env.root / link).unlink()


def test_rolling_state_is_never_saved_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "fleet"
    root.mkdir()
    (root / ".kvmfleet").symlink_to(outside)
    with pytest.raises(OSError, match="symbolic link"):
        State("c", "1", ["kvm01"]).save(state_path(root, "c"))
    assert list(outside.iterdir()) == []
