"""The host-side agent.properties merge, cloudstack-setup-agent and service shim (with fakes)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import host_program

cfg: Any = host_program("cloudstack-agent-config")

AGENT_PROPERTIES = """\
# The agent's configuration
#Tue Nov 24 10:00:00 UTC 2026
guid=old-guid
workers=5
host=10.0.0.1
keystore.passphrase=s3cret

# a comment between keys
zone=1
long.value=a,\\
    b,\\
    c
cluster=1
zone=duplicate
"""


class FakeRun:
    def __init__(self, code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.code = code

    def __call__(self, cmd: Sequence[str]) -> int:
        self.calls.append(list(cmd))
        return self.code


def declare(tmp_path: Path, set_: dict[str, str], seed: dict[str, str] | None = None) -> Path:
    path = tmp_path / "declared.json"
    path.write_text(json.dumps({"set": set_, "seed": seed or {}}))
    return path


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    """/etc/cloudstack/agent as a symlink to the state directory, as on the host."""
    real = tmp_path / "var" / "agent"
    real.mkdir(parents=True)
    (real / "agent.properties").write_text(AGENT_PROPERTIES)
    (real / "agent.properties").chmod(0o640)
    link = tmp_path / "etc-agent"
    link.symlink_to(real)
    return link


def merge(agent_dir: Path, tmp_path: Path, set_: dict[str, str], seed: Any = None) -> list[str]:
    declared = cfg.Declared.load(declare(tmp_path, set_, seed))
    result: list[str] = cfg.merge(agent_dir / "agent.properties", declared)
    return result


def test_parse_follows_java_properties() -> None:
    props = cfg.Properties.parse(AGENT_PROPERTIES + "a\\=b : c d\n  spaced   value \nempty\n")
    assert props.get("long.value") == "a,b,c"
    assert props.get("zone") == "duplicate"  # the last occurrence wins, as in Java
    assert props.get("a=b") == "c d"
    assert props.get("spaced") == "value "
    assert props.get("empty") == ""
    assert props.get("#Tue") is None


def test_merge_changes_only_declared_keys(agent_dir: Path, tmp_path: Path) -> None:
    changed = merge(
        agent_dir, tmp_path, {"guid": "new-guid", "long.value": "x", "pod": "7", "cluster": "1"}
    )
    assert changed == ["guid", "long.value", "pod"]
    text = (agent_dir / "agent.properties").read_text()
    assert text == (
        "# The agent's configuration\n"
        "#Tue Nov 24 10:00:00 UTC 2026\n"
        "guid=new-guid\n"
        "workers=5\n"
        "host=10.0.0.1\n"
        "keystore.passphrase=s3cret\n"
        "\n"
        "# a comment between keys\n"
        "zone=1\n"
        "long.value=x\n"
        "cluster=1\n"
        "zone=duplicate\n"
        "pod=7\n"
    )


def test_merge_drops_later_duplicates_of_a_declared_key(agent_dir: Path, tmp_path: Path) -> None:
    merge(agent_dir, tmp_path, {"zone": "3"})
    text = (agent_dir / "agent.properties").read_text()
    assert "zone=3\n" in text
    assert "duplicate" not in text
    assert cfg.Properties.parse(text).get("zone") == "3"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("workers=5\\", "workers=5\\\n\nzone=1\n"),
        ("workers=5\\\\\\", "workers=5\\\\\\\n\nzone=1\n"),
        ("a=1\n  \\", "a=1\n  \\\n\nzone=1\n"),
        ("workers=5\\\\", "workers=5\\\\\nzone=1\n"),  # an escaped backslash: no continuation
        ("# note \\", "# note \\\nzone=1\n"),  # comments never continue
    ],
    ids=["key", "three-backslashes", "blank", "escaped", "comment"],
)
def test_a_key_appended_after_an_open_continuation_stays_a_key(text: str, rendered: str) -> None:
    """A file that ends in a continuation backslash (Java drops it at the end of the file): the
    appended key was read as part of that line (found by tests/test_host_programs_fuzz.py)."""
    props = cfg.Properties.parse(text)
    assert props.update({"zone": "1"})
    assert props.render() == rendered
    assert cfg.Properties.parse(rendered).get("zone") == "1"


def test_unchanged_file_is_not_rewritten(agent_dir: Path, tmp_path: Path) -> None:
    path = agent_dir / "agent.properties"
    before = path.stat()
    assert merge(agent_dir, tmp_path, {"workers": "5", "cluster": "1"}) == []
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_atomic_write_keeps_mode_and_the_symlinked_directory(
    agent_dir: Path, tmp_path: Path
) -> None:
    merge(agent_dir, tmp_path, {"guid": "g"})
    assert agent_dir.is_symlink()
    real = Path(os.path.realpath(agent_dir)) / "agent.properties"
    assert not real.is_symlink()
    assert real.stat().st_mode & 0o777 == 0o640
    leftovers = [p.name for p in real.parent.iterdir() if p.name.startswith(".agent.properties.")]
    assert leftovers == []


def test_missing_file_starts_from_the_template(tmp_path: Path) -> None:
    template = tmp_path / "template.properties"
    template.write_text("# upstream defaults\nport=8250\nworkers=5\n")
    target = tmp_path / "agent.properties"
    declared = cfg.Declared.load(declare(tmp_path, {"port": "8250", "zone": "1"}))
    cfg.merge(target, declared, template)
    assert target.read_text() == "# upstream defaults\nport=8250\nworkers=5\nzone=1\n"
    assert target.stat().st_mode & 0o777 == 0o600


def test_seeded_key_keeps_what_the_management_server_wrote(agent_dir: Path, tmp_path: Path) -> None:
    path = agent_dir / "agent.properties"
    (Path(os.path.realpath(agent_dir)) / "agent.properties").write_text("zone=1\n")
    merge(agent_dir, tmp_path, {}, {"host": "10.0.10.5,10.0.10.6"})
    assert cfg.Properties.parse(path.read_text()).get("host") == "10.0.10.5,10.0.10.6"
    # the management server sends its own list
    cfg.apply(path, {"host": "10.0.10.6,10.0.10.5"})
    merge(agent_dir, tmp_path, {}, {"host": "10.0.10.5,10.0.10.6"})
    assert cfg.Properties.parse(path.read_text()).get("host") == "10.0.10.6,10.0.10.5"
    # the declaration changes: it wins once
    merge(agent_dir, tmp_path, {}, {"host": "10.0.10.7"})
    assert cfg.Properties.parse(path.read_text()).get("host") == "10.0.10.7"


def test_first_merge_replaces_the_templates_seeded_value(tmp_path: Path) -> None:
    template = tmp_path / "template.properties"
    template.write_text("host=localhost\n")
    target = tmp_path / "agent.properties"
    declared = cfg.Declared.load(declare(tmp_path, {}, {"host": "10.0.10.5"}))
    cfg.merge(target, declared, template)
    assert target.read_text() == "host=10.0.10.5\n"


def test_bad_declaration_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "declared.json"
    bad.write_text(json.dumps({"set": {"zone": 1}}))
    code = cfg.main(["merge", "--properties", str(tmp_path / "p"), "--declared", str(bad)])
    assert code == 1
    assert capsys.readouterr().err == (f'merge: {bad}: "set" must map property names to strings\n')
    assert not (tmp_path / "p").exists()


property_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@given(key=property_text.filter(lambda key: key not in ("", "other")), value=property_text)
def test_escape_round_trips_through_the_parser(key: str, value: str) -> None:
    line = f"{cfg.escape(key, key=True)}={cfg.escape(value)}"
    assert line.isascii()
    props = cfg.Properties.parse(f"# c\n{line}\nother=1\n")
    assert props.get(key) == value
    assert props.get("other") == "1"


# ---------------------------------------------------------------- cloudstack-setup-agent

ADD_HOST = [
    "-m",
    "10.0.10.5,10.0.10.6",
    "-z",
    "1",
    "-p",
    "1",
    "-c",
    "1",
    "-g",
    "0c2f1a3e-1d3c-3b4a-9f0e-2a1b3c4d5e6f",
    "-a",
    "-s",
    "--pubNic=cloudbr1",
    "--prvNic=cloudbr0",
    "--guestNic=cloudbr1",
    "--hypervisor=kvm",
]


def setup(agent_dir: Path, tmp_path: Path, argv: list[str], declared: dict[str, str]) -> Any:
    run = FakeRun()
    code = cfg.main(
        [
            "setup",
            *argv,
            "--properties",
            str(agent_dir / "agent.properties"),
            "--declared",
            str(declare(tmp_path, declared)),
        ],
        run,
    )
    return code, run


def test_add_host_records_values_and_restarts(agent_dir: Path, tmp_path: Path) -> None:
    code, run = setup(agent_dir, tmp_path, ADD_HOST, {"zone": "1", "cluster": "1"})
    assert code == 0
    props = cfg.Properties.parse((agent_dir / "agent.properties").read_text())
    assert props.get("host") == "10.0.10.5,10.0.10.6"
    assert props.get("guid") == "0c2f1a3e-1d3c-3b4a-9f0e-2a1b3c4d5e6f"
    assert props.get("private.network.device") == "cloudbr0"
    assert props.get("guest.network.device") == "cloudbr1"
    assert props.get("hypervisor.type") == "kvm"
    assert props.get("keystore.passphrase") == "s3cret"
    assert run.calls == [
        ["systemctl", "start", "sockets.target"],
        ["systemctl", "try-restart", "libvirtd.service"],
        ["systemctl", "restart", "cloudstack-agent.service"],
    ]


def test_add_host_refuses_values_the_host_declares_otherwise(
    agent_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (agent_dir / "agent.properties").read_text()
    code, run = setup(agent_dir, tmp_path, ADD_HOST, {"zone": "2", "public.network.device": "br9"})
    assert code == 1
    err = capsys.readouterr().err
    assert "zone: management server says '1', this host declares '2'" in err
    assert "public.network.device" in err
    assert err.count("\n") == 1
    assert (agent_dir / "agent.properties").read_text() == before
    assert run.calls == []


def test_add_host_needs_every_value(
    agent_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, run = setup(agent_dir, tmp_path, ["-a", "-m", "ms", "-z", "1"], {})
    assert code == 1
    assert capsys.readouterr().err == "setup: -a needs -p, -c, -g\n"
    assert run.calls == []


def test_secure_alone_reloads_libvirt_certificates(agent_dir: Path, tmp_path: Path) -> None:
    before = (agent_dir / "agent.properties").read_text()
    code, run = setup(agent_dir, tmp_path, ["-s"], {})
    assert code == 0
    assert run.calls == [
        ["systemctl", "start", "sockets.target"],
        ["systemctl", "try-restart", "libvirtd.service"],
    ]
    assert (agent_dir / "agent.properties").read_text() == before


def test_unknown_options_are_ignored_with_a_note(
    agent_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = setup(agent_dir, tmp_path, [*ADD_HOST, "--future-option=1"], {})
    assert code == 0
    assert "ignoring --future-option=1" in capsys.readouterr().err


def test_failed_restart_is_an_error(agent_dir: Path, tmp_path: Path) -> None:
    run = FakeRun(code=5)
    code = cfg.main(
        [
            "setup",
            *ADD_HOST,
            "--properties",
            str(agent_dir / "agent.properties"),
            "--declared",
            str(declare(tmp_path, {})),
        ],
        run,
    )
    assert code == 1


# ---------------------------------------------------------------- service


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["cloudstack-agent", "restart"], ["systemctl", "restart", "cloudstack-agent.service"]),
        (["libvirtd", "status"], ["systemctl", "status", "libvirtd.service"]),
        (["libvirtd.socket", "stop"], ["systemctl", "stop", "libvirtd.socket"]),
        (
            ["cloudstack-agent", "force-reload"],
            ["systemctl", "reload-or-restart", "cloudstack-agent.service"],
        ),
    ],
)
def test_service_maps_to_systemctl(argv: list[str], command: list[str]) -> None:
    run = FakeRun(code=3)
    assert cfg.main(["service", *argv], run) == 3
    assert run.calls == [command]


@pytest.mark.parametrize("argv", [[], ["x"], ["x", "explode"], ["--all", "stop"], ["a/b", "stop"]])
def test_service_rejects_bad_usage(argv: list[str]) -> None:
    run = FakeRun()
    assert cfg.main(["service", *argv], run) == 1
    assert run.calls == []


def test_setup_agent_checks_the_keys_the_module_declares() -> None:
    """cloudstack-setup-agent refuses values that differ from declared "set" keys: the keys it
    writes must be the very names services.cloudstack-agent declares (host is seeded)."""
    module = (Path(__file__).parent.parent / "modules" / "cloudstack-agent.nix").read_text()
    for key in cfg.SETUP_KEYS.values():
        if key == "host":
            assert "seed.host = " in module
        elif key == "guid":
            assert "guid = cfg.guid;" in module
        else:
            assert f'"{key}" = ' in module, key
