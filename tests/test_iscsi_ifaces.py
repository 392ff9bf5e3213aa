"""iscsi-ifaces (pkgs/iscsi-ifaces), the host program behind services.iscsi-ifaces, against a fake
iscsiadm that keeps open-iscsi's records and sessions and records every call."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import host_program
from fake_iscsiadm import FakeIscsiadm

prog = host_program("iscsi-ifaces")

SAN = "10.1.0.100:3260"
VOLUME = "iqn.2001-05.com.equallogic:0-af1ff6-vol1"
OTHER = "iqn.2001-05.com.equallogic:0-af1ff6-vol2"
CHANGING = ("new", "update", "delete")


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ifaces": {"ieth0": {"interface": "san0"}, "ieth1": {"interface": "san1"}},
        "targets": [
            {"portal": SAN, "ifaces": ["ieth0", "ieth1"], "target": None, "chapSecretFile": None}
        ],
        "nodeSettings": {"node.session.timeo.replacement_timeout": 15},
    }
    base.update(overrides)
    return base


def san(**kwargs: Any) -> FakeIscsiadm:
    return FakeIscsiadm(offers={SAN: [[VOLUME, SAN]]}, **kwargs)


class Host:
    """The program run in-process against a fake, collecting what it logs."""

    def __init__(self, fake: FakeIscsiadm) -> None:
        self.fake = fake
        self.log: list[str] = []

    def runner(self, argv: Any) -> Any:
        r = self.fake.run(argv)
        return prog.Result(r.code, r.out, r.err)

    def act(self, action: str, cfg: dict[str, Any]) -> int:
        """`start`: the number of missing paths (its outcome kept in `self.outcome`);
        `stop`: the number of failed logouts."""
        adm = prog.Iscsiadm(self.runner, self.log.append)
        loaded = prog.load_config(json.dumps(cfg))
        if action == "stop":
            failures: int = prog.stop(adm, loaded)
            return failures
        sysfs = None if self.fake.sysfs is None else Path(self.fake.sysfs)
        self.outcome = prog.start(adm, loaded, sysfs)
        return len(self.outcome.missing)


def changing_calls(fake: FakeIscsiadm, since: int = 0) -> list[list[str]]:
    return [
        c
        for c in fake.calls[since:]
        if ("-o" in c and c[c.index("-o") + 1] in CHANGING and "--discover" not in c)
        or "--login" in c
        or "--logout" in c
    ]


def sessions(fake: FakeIscsiadm) -> set[tuple[str, str, str]]:
    return {(t, p, i) for _, t, p, i in fake.sessions}


def test_first_run_binds_ifaces_discovers_sets_timeout_and_logs_in() -> None:
    host = Host(san())
    assert host.act("start", config()) == 0
    fake = host.fake
    assert fake.ifaces == {"ieth0": "san0", "ieth1": "san1"}
    assert sessions(fake) == {(VOLUME, SAN, "ieth0"), (VOLUME, SAN, "ieth1")}
    for iface in ("ieth0", "ieth1"):
        node = fake.nodes[f"{VOLUME}|{SAN}|{iface}"]
        assert node["node.session.timeo.replacement_timeout"] == "15"
        assert node["node.session.auth.authmethod"] == "None"
    # discovery through each iface separately, never overwriting existing node records
    discoveries = [c for c in fake.calls if "--discover" in c]
    assert [c[c.index("-I") + 1] for c in discoveries] == ["ieth0", "ieth1"]
    assert all(c[c.index("-o") + 1] == "new" for c in discoveries)
    # the iface is bound before anything logs in through it
    first_login = next(n for n, c in enumerate(fake.calls) if "--login" in c)
    binds = [n for n, c in enumerate(fake.calls) if "iface.net_ifacename" in c]
    assert len(binds) == 2 and max(binds) < first_login


def test_second_run_changes_nothing() -> None:
    host = Host(san())
    assert host.act("start", config()) == 0
    state = host.fake.to_json()
    seen = len(host.fake.calls)
    host.log.clear()
    assert host.act("start", config()) == 0
    assert changing_calls(host.fake, seen) == []
    assert host.log == []
    after = json.loads(host.fake.to_json())
    before = json.loads(state)
    after.pop("calls")
    before.pop("calls")
    assert after == before


def test_a_new_volume_is_logged_in_without_touching_live_sessions() -> None:
    host = Host(san())
    host.act("start", config())
    live = list(host.fake.sessions)
    host.fake.offers[SAN].append([OTHER, SAN])
    seen = len(host.fake.calls)
    assert host.act("start", config()) == 0
    assert host.fake.sessions[:2] == live
    logins = [c for c in changing_calls(host.fake, seen) if "--login" in c]
    assert {(c[c.index("-T") + 1], c[c.index("-I") + 1]) for c in logins} == {
        (OTHER, "ieth0"),
        (OTHER, "ieth1"),
    }


def test_rebinding_an_iface_only_updates_it() -> None:
    host = Host(san())
    host.act("start", config())
    seen = len(host.fake.calls)
    cfg = config(ifaces={"ieth0": {"interface": "san2"}, "ieth1": {"interface": "san1"}})
    assert host.act("start", cfg) == 0
    assert changing_calls(host.fake, seen) == [
        ["-m", "iface", "-I", "ieth0", "-o", "update", "-n", "iface.net_ifacename", "-v", "san2"]
    ]


def test_a_changed_session_setting_is_updated_on_every_node() -> None:
    host = Host(san())
    host.act("start", config())
    seen = len(host.fake.calls)
    cfg = config(nodeSettings={"node.session.timeo.replacement_timeout": 5})
    assert host.act("start", cfg) == 0
    updates = changing_calls(host.fake, seen)
    assert len(updates) == 2
    assert all(
        c[-4:] == ["-n", "node.session.timeo.replacement_timeout", "-v", "5"] for c in updates
    )


def test_one_nic_down_logs_in_through_the_other_and_reports_the_missing_path() -> None:
    host = Host(san(down=["san1"]))
    assert host.act("start", config()) == 1
    assert sessions(host.fake) == {(VOLUME, SAN, "ieth0")}
    assert any("discovery through ieth1 failed" in line for line in host.log)
    assert f"path missing: any target at {SAN} through ieth1 (san1)" in host.log
    # degraded, not down: the target has a session
    assert host.outcome.ok and host.outcome.unserved == ()
    # the link comes back: a reload adds the missing session and nothing else
    host.fake.down.clear()
    seen = len(host.fake.calls)
    assert host.act("start", config()) == 0
    assert sessions(host.fake) == {(VOLUME, SAN, "ieth0"), (VOLUME, SAN, "ieth1")}
    logins = [c for c in changing_calls(host.fake, seen) if "--login" in c]
    assert len(logins) == 1 and logins[0][logins[0].index("-I") + 1] == "ieth1"


def test_a_changed_timeout_reaches_the_live_sessions(tmp_path: Path) -> None:
    host = Host(san(sysfs=str(tmp_path)))
    host.act("start", config())
    live = sorted(tmp_path.glob("session*/recovery_tmo"))
    assert [f.read_text() for f in live] == ["15\n", "15\n"]
    host.log.clear()
    assert host.act("start", config(nodeSettings={prog.REPLACEMENT_TIMEOUT: 20})) == 0
    assert [f.read_text() for f in live] == ["20", "20"]
    assert sum("set recovery_tmo 20 on live session" in line for line in host.log) == 2
    # a session of someone else's (open-iscsi's default iface) is left alone
    host.fake.sessions.append(["9", OTHER, SAN, "default"])
    (tmp_path / "session9").mkdir()
    (tmp_path / "session9" / "recovery_tmo").write_text("120\n")
    host.log.clear()
    assert host.act("start", config(nodeSettings={prog.REPLACEMENT_TIMEOUT: 20})) == 0
    assert host.log == []
    assert (tmp_path / "session9" / "recovery_tmo").read_text() == "120\n"


def test_discovery_timeouts_are_set_on_the_discovery_record() -> None:
    host = Host(san())
    settings = {
        "discovery.sendtargets.timeo.login_timeout": 5,
        "discovery.sendtargets.reopen_max": 1,
    }
    assert host.act("start", config(discoverySettings=settings)) == 0
    record = host.fake.discovery[SAN]
    assert record["discovery.sendtargets.timeo.login_timeout"] == "5"
    assert record["discovery.sendtargets.reopen_max"] == "1"
    seen = len(host.fake.calls)
    assert host.act("start", config(discoverySettings=settings)) == 0
    assert changing_calls(host.fake, seen) == []


def test_a_reload_while_every_link_is_down_keeps_its_sessions_degraded() -> None:
    host = Host(san())
    host.act("start", config())
    host.fake.down = ["san0", "san1"]
    assert host.act("start", config()) == 2
    assert host.outcome.ok, host.outcome
    assert len(host.fake.sessions) == 2


def test_nothing_reachable_is_down_not_degraded() -> None:
    host = Host(san(down=["san0", "san1"]))
    assert host.act("start", config()) == 2
    assert not host.outcome.ok
    assert host.outcome.unserved == (f"any target at {SAN}",)


def test_stop_accepts_a_session_that_vanished_meanwhile() -> None:
    host = Host(san())
    host.act("start", config())
    # the session disappears between the listing and the logout (iscsiadm exits 22)
    real_run = host.fake.run

    def vanishing(argv: Any) -> Any:
        if "--logout" in argv and argv[argv.index("-r") + 1] == "1":
            host.fake.sessions = [s for s in host.fake.sessions if s[0] != "1"]
        return real_run(argv)

    host.fake.run = vanishing  # type: ignore[method-assign]
    assert host.act("stop", config()) == 0
    assert host.fake.sessions == []


def test_the_fake_resets_an_iface_created_again_as_iscsiadm_does() -> None:
    fake = san()
    fake.run(["iscsiadm", "-m", "iface", "-I", "ieth0", "-o", "new"])
    fake.run(
        [
            "iscsiadm",
            "-m",
            "iface",
            "-I",
            "ieth0",
            "-o",
            "update",
            "-n",
            "iface.net_ifacename",
            "-v",
            "san0",
        ]
    )
    assert fake.run(["iscsiadm", "-m", "iface", "-I", "ieth0", "-o", "new"]).code == 0
    assert fake.ifaces == {"ieth0": ""}
    # so the program never creates an iface that exists
    host = Host(fake)
    host.act("start", config())
    seen = len(fake.calls)
    host.act("start", config())
    assert not [c for c in fake.calls[seen:] if c[:2] == ["-m", "iface"] and "new" in c]


def test_only_the_named_target_is_logged_in() -> None:
    fake = FakeIscsiadm(offers={SAN: [[VOLUME, SAN], [OTHER, SAN]]})
    host = Host(fake)
    target = {"portal": SAN, "ifaces": ["ieth0", "ieth1"], "target": OTHER.upper()}
    assert host.act("start", config(targets=[target])) == 0
    assert {t for t, _, _ in sessions(fake)} == {OTHER}


def test_two_subnets_one_target_per_portal() -> None:
    a, b = "10.1.0.100:3260", "10.2.0.100:3260"
    fake = FakeIscsiadm(offers={a: [[VOLUME, a]], b: [[VOLUME, b]]})
    host = Host(fake)
    targets = [{"portal": a, "ifaces": ["ieth0"]}, {"portal": b, "ifaces": ["ieth1"]}]
    assert host.act("start", config(targets=targets)) == 0
    assert sessions(fake) == {(VOLUME, a, "ieth0"), (VOLUME, b, "ieth1")}
    seen = len(fake.calls)
    assert host.act("start", config(targets=targets)) == 0
    assert changing_calls(fake, seen) == []


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "chap"
    path.write_text("# EqualLogic CHAP account\nusername = kvm01\npassword = s3cret-s3cret\n")
    return path


def test_chap_from_the_secret_file_for_discovery_and_sessions(secret: Path) -> None:
    host = Host(san(chap=["kvm01", "s3cret-s3cret"]))
    target = {"portal": SAN, "ifaces": ["ieth0", "ieth1"], "chapSecretFile": str(secret)}
    assert host.act("start", config(targets=[target])) == 0
    assert len(host.fake.sessions) == 2
    assert host.fake.discovery[SAN]["discovery.sendtargets.auth.authmethod"] == "CHAP"
    node = host.fake.nodes[f"{VOLUME}|{SAN}|ieth0"]
    assert node["node.session.auth.authmethod"] == "CHAP"
    assert node["node.session.auth.username_in"] == ""
    assert not any("s3cret" in line for line in host.log)
    seen = len(host.fake.calls)
    assert host.act("start", config(targets=[target])) == 0
    assert changing_calls(host.fake, seen) == []


def test_removing_mutual_chap_and_then_chap_clears_the_records(secret: Path) -> None:
    host = Host(san())
    target = {"portal": SAN, "ifaces": ["ieth0"], "chapSecretFile": str(secret)}
    secret.write_text("username = a\npassword = b\nusername_in = c\npassword_in = d\n")
    assert host.act("start", config(targets=[target])) == 0
    node = host.fake.nodes[f"{VOLUME}|{SAN}|ieth0"]
    assert node["node.session.auth.password_in"] == "d"
    secret.write_text("username = a\npassword = b\n")
    assert host.act("start", config(targets=[target])) == 0
    assert node["node.session.auth.username_in"] == node["node.session.auth.password_in"] == ""
    target.pop("chapSecretFile")
    assert host.act("start", config(targets=[target])) == 0
    assert node["node.session.auth.authmethod"] == "None"
    assert host.fake.discovery[SAN]["discovery.sendtargets.auth.authmethod"] == "None"


def test_a_wrong_chap_secret_fails_without_showing_it(secret: Path) -> None:
    host = Host(san(chap=["kvm01", "another-secret"]))
    target = {"portal": SAN, "ifaces": ["ieth0", "ieth1"], "chapSecretFile": str(secret)}
    assert host.act("start", config(targets=[target])) > 0
    assert host.fake.sessions == []
    assert any("authorize" in line for line in host.log)
    assert not any("s3cret" in line for line in host.log)


def test_an_unreadable_secret_file_fails_that_target_only(tmp_path: Path) -> None:
    fake = FakeIscsiadm(
        offers={SAN: [[VOLUME, SAN]], "10.1.0.101:3260": [[OTHER, "10.1.0.101:3260"]]}
    )
    host = Host(fake)
    targets = [
        {"portal": "10.1.0.101:3260", "ifaces": ["ieth0"], "chapSecretFile": str(tmp_path / "no")},
        {"portal": SAN, "ifaces": ["ieth0"]},
    ]
    assert host.act("start", config(targets=targets)) == 1
    assert sessions(fake) == {(VOLUME, SAN, "ieth0")}
    assert any("cannot read CHAP secret file" in line for line in host.log)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("username = a\n", "no password"),
        ("password = a\n", "no username"),
        ("username = a\npassword = b\nusername_in = c\n", "needs both"),
        ("username = a\npassword = b\nsecret-on-its-own\n", ":3: expected one of"),
        ("username = a\npasswd = hunter2\n", ":2: expected one of"),
    ],
)
def test_bad_secret_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "chap"
    path.write_text(text)
    with pytest.raises(prog.ConfigError, match=message) as raised:
        prog.read_chap(str(path))
    assert "hunter2" not in str(raised.value)


def test_passwords_are_redacted_in_error_messages() -> None:
    args = ["-m", "node", "-o", "update", "-n", "node.session.auth.password", "-v", "hunter2"]
    error = prog.IscsiadmError(args, prog.Result(7, "", "boom"))
    assert "hunter2" not in str(error)
    assert "node.session.auth.password -v ********" in str(error)
    plain = ["-o", "update", "-n", "node.session.auth.username", "-v", "kvm01"]
    assert "-v kvm01" in str(prog.IscsiadmError(plain, prog.Result(7, "", "")))


def test_stop_logs_out_only_the_configured_ifaces_sessions() -> None:
    host = Host(san())
    host.act("start", config())
    # a session of someone else's through open-iscsi's default iface
    host.fake.sessions.append(["9", OTHER, SAN, "default"])
    assert host.act("stop", config()) == 0
    assert host.fake.sessions == [["9", OTHER, SAN, "default"]]
    logouts = [c for c in host.fake.calls if "--logout" in c]
    assert sorted(c[c.index("-r") + 1] for c in logouts) == ["1", "2"]


def test_stop_without_sessions_does_nothing() -> None:
    host = Host(san())
    assert host.act("stop", config()) == 0
    assert changing_calls(host.fake) == []


def test_session_tree_carries_target_and_portal_over_omitted_lines() -> None:
    text = (
        f"Target: {VOLUME} (non-flash)\n"
        f"\tCurrent Portal: 10.1.0.13:3260,1\n\tPersistent Portal: {SAN},1\n"
        "\t\t**********\n\t\tInterface:\n\t\t**********\n\t\tIface Name: ieth0\n\t\tSID: 3\n"
        "\n"
        "\t\t**********\n\t\tInterface:\n\t\t**********\n\t\tIface Name: ieth1\n\t\tSID: 4\n"
        f"Target: {OTHER} (non-flash)\n"
        "\tCurrent Portal: [fd00::1]:3260,1\n\tPersistent Portal: [fd00::1]:3260,1\n"
        "\t\tIface Name: default\n\t\tSID: 5\n"
    )
    assert prog.parse_sessions(text) == [
        prog.Session("3", prog.Node(VOLUME, SAN, "ieth0")),
        prog.Session("4", prog.Node(VOLUME, SAN, "ieth1")),
        prog.Session("5", prog.Node(OTHER, "[fd00::1]:3260", "default")),
    ]


def test_discovery_output_with_ipv6_portals() -> None:
    text = f"[fd00::1]:3260,1 {VOLUME}\n10.1.0.100:3260,1 {OTHER}\n"
    assert prog.parse_discovery(text, "ieth0") == [
        prog.Node(VOLUME, "[fd00::1]:3260", "ieth0"),
        prog.Node(OTHER, "10.1.0.100:3260", "ieth0"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid configuration"),
        ('{"ifaces": {"ieth0": {}}}', "invalid configuration"),
        ('{"targets": [{"portal": "a:1", "ifaces": ["ieth9"]}]}', "iface 'ieth9'"),
        ('{"nodeSettings": {"a": [1]}}', "invalid configuration"),
    ],
)
def test_bad_configurations(text: str, message: str) -> None:
    with pytest.raises(prog.ConfigError, match=message):
        prog.load_config(text)


@pytest.fixture
def fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`iscsiadm` on PATH: an executable running the fake on a JSON state file."""
    state = tmp_path / "state.json"
    state.write_text(san(sysfs=str(tmp_path / "sys")).to_json())
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "iscsiadm"
    tests = Path(__file__).resolve().parent
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "from pathlib import Path\n"
        "import fake_iscsiadm\n"
        f"sys.exit(fake_iscsiadm.main(Path({str(state)!r})))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    yield state


def test_command_line_start_and_stop(
    fake_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config()))
    state = tmp_path / "run"
    args = [
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        "--sessions-sysfs",
        str(tmp_path / "sys"),
    ]
    assert prog.main([*args, "start"]) == 0
    fake = FakeIscsiadm.from_json(fake_binary.read_text())
    assert sessions(fake) == {(VOLUME, SAN, "ieth0"), (VOLUME, SAN, "ieth1")}
    assert "iscsi-ifaces: logged in to" in capsys.readouterr().out
    assert not (state / "missing").exists()
    assert prog.main([*args, "start"]) == 0
    assert capsys.readouterr().out == ""
    assert prog.main([*args, "stop"]) == 0
    assert FakeIscsiadm.from_json(fake_binary.read_text()).sessions == []


def test_stop_clears_the_list_of_missing_paths(fake_binary: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config()))
    state = tmp_path / "run"
    state.mkdir()
    (state / "missing").write_text("x\n")
    args = ["--config", str(cfg), "--state-dir", str(state), "--sessions-sysfs", str(tmp_path)]
    assert prog.main([*args, "stop"]) == 0
    assert not (state / "missing").exists()


def test_command_line_degraded_start_succeeds_and_retry_brings_the_path_back(
    fake_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeIscsiadm.from_json(fake_binary.read_text())
    fake.down = ["san1"]
    fake_binary.write_text(fake.to_json())
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config()))
    state = tmp_path / "run"
    args = [
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        "--sessions-sysfs",
        str(tmp_path / "sys"),
    ]
    assert prog.main([*args, "start"]) == 0
    assert f"path missing: any target at {SAN} through ieth1 (san1)" in capsys.readouterr().out
    assert (state / "missing").read_text() == f"any target at {SAN} through ieth1 (san1)\n"
    # still down: a retry round changes nothing and keeps the list
    assert (
        prog.retry(
            prog.Iscsiadm(prog.run_process, print),
            prog.load_config(cfg.read_text()),
            state,
            0,
            None,
            rounds=1,
        )
        == 1
    )
    # the link comes back: the retry logs the missing path in and ends
    fake = FakeIscsiadm.from_json(fake_binary.read_text())
    fake.down = []
    fake_binary.write_text(fake.to_json())
    assert prog.main([*args, "--interval", "0", "retry"]) == 0
    assert "every path has a session" in capsys.readouterr().out
    assert sessions(FakeIscsiadm.from_json(fake_binary.read_text())) == {
        (VOLUME, SAN, "ieth0"),
        (VOLUME, SAN, "ieth1"),
    }
    assert not (state / "missing").exists()


def test_command_line_fails_while_a_target_has_no_session(
    fake_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeIscsiadm.from_json(fake_binary.read_text())
    fake.down = ["san0", "san1"]
    fake_binary.write_text(fake.to_json())
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config()))
    state = tmp_path / "run"
    args = [
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        "--sessions-sysfs",
        str(tmp_path / "sys"),
    ]
    assert prog.main([*args, "start"]) == 1
    assert f"no session to any target at {SAN}" in capsys.readouterr().err
    assert len((state / "missing").read_text().splitlines()) == 2


def test_retry_without_missing_paths_ends_at_once(tmp_path: Path) -> None:
    host = Host(san())
    adm = prog.Iscsiadm(host.runner, host.log.append)
    slept: list[float] = []
    assert (
        prog.retry(
            adm, prog.load_config(json.dumps(config())), tmp_path, 30, None, sleep=slept.append
        )
        == 0
    )
    assert slept == [] and host.fake.calls == []


def test_notify_sends_the_status_to_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        prog.notify("STATUS=missing 1 path(s): x")
        assert server.recv(100) == b"STATUS=missing 1 path(s): x"


def test_command_line_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text("{")
    assert prog.main(["--config", str(cfg), "start"]) == 2
    assert capsys.readouterr().err.startswith(f"iscsi-ifaces: {cfg}: invalid configuration")
    assert prog.main(["--config", str(tmp_path / "missing"), "start"]) == 2


# --- convergence, for any starting state and configuration ---------------------------------------

NICS = ["san0", "san1", "san2"]
PORTALS = ["10.1.0.100:3260", "10.2.0.100:3260", "[fd00::100]:3260"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """A configuration, an earlier configuration (the host's state comes from applying it) and a
    set of NICs without link."""

    def a_config() -> dict[str, Any]:
        names = draw(
            st.lists(st.sampled_from(["ieth0", "ieth1", "ieth2"]), min_size=1, unique=True)
        )
        ifaces = {n: {"interface": draw(st.sampled_from(NICS))} for n in names}
        portals = draw(st.lists(st.sampled_from(PORTALS), min_size=1, max_size=2, unique=True))
        targets = [
            {"portal": p, "ifaces": draw(st.lists(st.sampled_from(names), min_size=1, unique=True))}
            for p in portals
        ]
        timeout = draw(st.sampled_from([5, 15, 120]))
        return config(
            ifaces=ifaces,
            targets=targets,
            nodeSettings={"node.session.timeo.replacement_timeout": timeout},
        )

    return a_config(), a_config(), set(draw(st.lists(st.sampled_from(NICS))))


@settings(max_examples=60, deadline=None)
@given(worlds())
def test_one_run_converges_from_any_state(
    world: tuple[dict[str, Any], dict[str, Any], set[str]],
) -> None:
    wanted, earlier, down = world
    offers = {p: [[VOLUME, p], [OTHER, p]] for p in PORTALS}
    host = Host(FakeIscsiadm(offers=offers))
    host.act("start", earlier)
    host.fake.down = sorted(down)
    failures = host.act("start", wanted)
    # every wanted session through a NIC with link exists, with the wanted settings
    timeout = str(wanted["nodeSettings"]["node.session.timeo.replacement_timeout"])
    for target in wanted["targets"]:
        for iface in target["ifaces"]:
            reachable = wanted["ifaces"][iface]["interface"] not in down
            for volume in (VOLUME, OTHER):
                node = (volume, target["portal"], iface)
                assert (node in sessions(host.fake)) or not reachable
                if reachable:
                    record = host.fake.nodes["|".join(node)]
                    assert record["node.session.timeo.replacement_timeout"] == timeout
    assert {
        i: s["interface"] for i, s in wanted["ifaces"].items()
    }.items() <= host.fake.ifaces.items()
    assert (failures == 0) == all(
        wanted["ifaces"][i]["interface"] not in down for t in wanted["targets"] for i in t["ifaces"]
    )
    # and a second run changes nothing
    seen = len(host.fake.calls)
    assert host.act("start", wanted) == failures
    assert [c for c in changing_calls(host.fake, seen) if "--login" not in c] == []
