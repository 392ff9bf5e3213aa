"""Hostile inputs to the host programs (pkgs/*/*.py): whatever bytes their files hold (any encoding,
line endings, sizes, structure), each program ends with an exit code it documents, never an
exception (a traceback in the journal), reports a bad file in one line naming it, goes on with
what it can, and never prints a secret it read."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, host_program
from fake_iscsiadm import FakeIscsiadm

iscsi = host_program("iscsi-ifaces")
agent_config = host_program("cloudstack-agent-config")
battery = host_program("battery-thresholds")
cephfs_du = host_program("cephfs-du")
printers = host_program("ensure-printers")
bond_macs = host_program("bond-macs")

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-32", "cp1252")
NEWLINES = ("\n", "\r\n", "\r")


@st.composite
def encoded_text(draw: st.DrawFn, lines: st.SearchStrategy[str] | None = None) -> bytes:
    """Text lines joined with any line ending, in any encoding (where it can be encoded)."""
    parts = draw(st.lists(lines if lines is not None else st.text(max_size=80), max_size=20))
    text = draw(st.sampled_from(NEWLINES)).join(parts)
    encoding = draw(st.sampled_from(ENCODINGS))
    return text.encode(encoding, "replace")


# Raw bytes, encoded text, and large inputs (a file a program must not choke on).
FILE_BYTES = st.one_of(
    st.binary(max_size=512),
    encoded_text(),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8), st.integers(1, 20000)),
)


def run_main(main: Any, *args: Any) -> tuple[int, str, str]:
    """A program's main in-process, with its output captured; argparse's exit is its status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(*args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# --- iscsi-ifaces ----------------------------------------------------------------------------------

SAN = "10.1.0.100:3260"
OTHER_SAN = "10.1.0.101:3260"
VOLUME = "iqn.2001-05.com.equallogic:0-af1ff6-vol1"
OTHER = "iqn.2001-05.com.equallogic:0-af1ff6-vol2"
SECRET = "Sup3rS3cretChap"


def _two_targets(secret: Path) -> dict[str, Any]:
    return {
        "ifaces": {"ieth0": {"interface": "san0"}},
        "targets": [
            {"portal": OTHER_SAN, "ifaces": ["ieth0"], "chapSecretFile": str(secret)},
            {"portal": SAN, "ifaces": ["ieth0"]},
        ],
    }


def _fake() -> FakeIscsiadm:
    return FakeIscsiadm(offers={SAN: [[VOLUME, SAN]], OTHER_SAN: [[OTHER, OTHER_SAN]]})


@FUZZ
@given(content=FILE_BYTES)
def test_iscsi_ifaces_any_chap_file_fails_its_target_only(tmp_path: Path, content: bytes) -> None:
    secret = tmp_path / "chap"
    secret.write_bytes(content + SECRET.encode())
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_two_targets(secret)))
    fake = _fake()
    code, out, err = run_main(iscsi.main, ["--config", str(config), "start"], fake.run)
    assert code in (0, 1)
    # the target without CHAP is logged in whatever the other's file holds
    assert any(session[1] == VOLUME for session in fake.sessions)
    assert SECRET not in out + err
    if code == 1:
        assert str(secret) in out + err


def test_iscsi_ifaces_a_non_utf8_chap_file_is_one_line(tmp_path: Path) -> None:
    """The reported case: a CHAP file in Latin-1 stopped the program with a traceback."""
    secret = tmp_path / "chap"
    secret.write_bytes("username = kvm01\npassword = gehe\xefm\n".encode("latin-1"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_two_targets(secret)))
    fake = _fake()
    code, out, _ = run_main(iscsi.main, ["--config", str(config), "start"], fake.run)
    assert code == 1
    assert [line for line in out.splitlines() if "chap" in line] == [
        f"iscsi-ifaces: CHAP secret file {secret} is not UTF-8 text"
    ]
    assert [s[1] for s in fake.sessions] == [VOLUME]


def test_iscsi_ifaces_a_bom_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    secret = tmp_path / "chap"
    secret.write_bytes(b"\xef\xbb\xbfusername = kvm01\r\npassword = s3cret-s3cret\r\n")
    assert iscsi.read_chap(str(secret)) == {"username": "kvm01", "password": "s3cret-s3cret"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def iscsi_configs(draw: st.DrawFn) -> bytes:
    """Configuration files: any bytes, deep nesting, or JSON of roughly the right shape with wrong
    types and values in it."""
    shaped = {
        "ifaces": draw(st.one_of(json_values, st.just({"ieth0": {"interface": "san0"}}))),
        "targets": draw(
            st.one_of(
                json_values,
                st.lists(
                    st.fixed_dictionaries(
                        {"portal": json_values, "ifaces": json_values},
                        optional={"target": json_values, "chapSecretFile": json_values},
                    ),
                    max_size=3,
                ),
            )
        ),
        "nodeSettings": draw(json_values),
    }
    return draw(
        st.one_of(
            FILE_BYTES,
            st.just(b"[" * 100000),
            st.just(json.dumps(shaped).encode()),
            st.just(json.dumps(draw(json_values)).encode()),
        )
    )


@FUZZ
@given(content=iscsi_configs())
def test_iscsi_ifaces_any_configuration_ends_with_a_documented_code(
    tmp_path: Path, content: bytes
) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(content)
    fake = _fake()
    for action in ("start", "stop"):
        code, _, err = run_main(iscsi.main, ["--config", str(config), action], fake.run)
        assert code in (0, 1, 2)
        if code == 2:
            assert len(err.splitlines()) == 1 and str(config) in err


def test_iscsi_ifaces_process_reports_a_bad_configuration_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(b"\xff\xfe{")
    script = REPO / "pkgs" / "iscsi-ifaces" / "iscsi_ifaces.py"
    done = subprocess.run(
        [sys.executable, str(script), "--config", str(config), "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"iscsi-ifaces: {config}: not UTF-8 text\n"


def test_iscsi_ifaces_without_iscsiadm_reports_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ifaces": {"ieth0": {"interface": "san0"}}, "targets": []}))
    result = iscsi.run_process(["/nonexistent/iscsiadm", "-m", "iface"])
    assert result.code == 127 and "cannot run /nonexistent/iscsiadm" in result.err
    assert iscsi.run_process(["iscsiadm", "a\0b"]).code == 127


# --- cloudstack-agent-config -----------------------------------------------------------------------


def _merge(properties: Path, declared: Path, *extra: str) -> tuple[int, str, str]:
    argv = ["merge", "--properties", str(properties), "--declared", str(declared), *extra]
    return run_main(agent_config.main, argv)


DECLARED = {"set": {"zone": "1", "pod": "1"}, "seed": {"host": "10.0.10.5"}}


@FUZZ
@given(properties=FILE_BYTES, state=FILE_BYTES, template=FILE_BYTES)
def test_agent_config_merge_takes_any_properties_state_and_template(
    tmp_path: Path, properties: bytes, state: bytes, template: bytes
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir(exist_ok=True)
    props = folder / "agent.properties"
    props.write_bytes(properties)
    (folder / agent_config.STATE_NAME).write_bytes(state)
    (folder / "template").write_bytes(template)
    declared = tmp_path / "declared.json"
    declared.write_text(json.dumps(DECLARED))
    code, _, err = _merge(props, declared, "--template", str(folder / "template"))
    assert (code, err) == (0, "")
    merged = agent_config.Properties.parse(props.read_text(encoding="latin-1"))
    assert merged.get("zone") == "1" and merged.get("pod") == "1"


@FUZZ
@given(
    content=st.one_of(
        FILE_BYTES, st.just(b"{" * 50000), st.builds(lambda v: json.dumps(v).encode(), json_values)
    )
)
def test_agent_config_any_declaration_ends_with_a_documented_code(
    tmp_path: Path, content: bytes
) -> None:
    declared = tmp_path / "declared.json"
    declared.write_bytes(content)
    props = tmp_path / "agent.properties"
    props.unlink(missing_ok=True)
    code, out, err = _merge(props, declared)
    assert code in (0, 1)
    if code == 1:
        assert len(err.splitlines()) == 1 and str(declared) in err
        assert not props.exists()
    out.encode("ascii")  # keys are shown as the file holds them, escaped


@FUZZ
@given(
    command=st.sampled_from(["setup", "service"]),
    args=st.lists(
        st.one_of(
            st.sampled_from(["-a", "-m", "-z", "-p", "-c", "-g", "-s", "-t", "start", "--prvNic"]),
            st.text(max_size=12),
        ),
        max_size=8,
    ),
)
def test_agent_config_any_setup_or_service_arguments_end_with_a_documented_code(
    tmp_path: Path, command: str, args: list[str]
) -> None:
    declared = tmp_path / "declared.json"
    declared.write_text(json.dumps(DECLARED))
    props = tmp_path / "agent.properties"
    extra = ["--properties", str(props), "--declared", str(declared)] if command == "setup" else []
    calls: list[list[str]] = []

    def run(cmd: Sequence[str]) -> int:
        calls.append(list(cmd))
        return 0

    code, _, err = run_main(agent_config.main, [command, *args, *extra], run)
    assert code in (0, 1, 2)
    if code == 1:  # one line of its own (after a notice of ignored arguments, if any)
        assert err.splitlines()[-1].startswith(f"{command}: ")


@pytest.mark.parametrize("where", ["missing", "file"])
def test_agent_config_merge_into_a_directory_that_cannot_hold_it(
    tmp_path: Path, where: str
) -> None:
    """The reported case: merge on a missing directory printed a 25-line traceback."""
    parent = tmp_path / "etc-cloudstack"
    if where == "file":
        parent.write_text("not a directory\n")
    props = parent / "agent.properties"
    declared = tmp_path / "declared.json"
    declared.write_text(json.dumps(DECLARED))
    code, out, err = _merge(props, declared)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"merge: {props}: cannot ")


NOBODY = 65534  # nobody/nogroup (Debian, NixOS)


def _python_for(user: dict[str, Any]) -> str:
    """A Python the user can run (the program is stdlib only): this one, the one it is made from,
    or the system's; a virtual environment or pyenv may lie under root's 0700 home."""
    candidates = [
        sys.executable,
        os.path.realpath(sys.executable),
        shutil.which("python3"),
        shutil.which("python3", path=os.defpath),
    ]
    for python in filter(None, candidates):
        with contextlib.suppress(OSError):
            if subprocess.run([python, "-c", ""], capture_output=True, **user).returncode == 0:
                return python
    if os.environ.get("CI"):
        pytest.fail(f"no Python runs as uid {NOBODY}, and CI is set: {candidates}")
    pytest.skip(f"no Python runs as uid {NOBODY}: {candidates}")


def test_agent_config_merge_into_a_read_only_directory() -> None:
    """The program in its own process, as a user the directory does not let write: the directory
    is that user's own, read-only (0555). Root writes anywhere (CAP_DAC_OVERRIDE), so as root (CI)
    the program runs as nobody, with no supplementary groups."""
    as_root = os.geteuid() == 0
    user: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_root else {}
    # under /tmp, not tmp_path: pytest makes root's base directory 0700
    base = Path(tempfile.mkdtemp(prefix="agent-config-read-only-"))
    folder = base / "agent"
    try:
        base.chmod(0o755)
        program = base / "cloudstack_agent_config.py"
        shutil.copy(REPO / "pkgs" / "cloudstack-agent-config" / program.name, program)
        program.chmod(0o644)
        declared = base / "declared.json"
        declared.write_text(json.dumps(DECLARED))
        declared.chmod(0o644)
        folder.mkdir()
        if as_root:
            os.chown(folder, NOBODY, NOBODY)
        folder.chmod(0o555)
        python = _python_for(user)
        props = folder / "agent.properties"
        argv = ["merge", "--properties", str(props), "--declared", str(declared)]
        done = subprocess.run(
            [python, "-I", str(program), *argv],
            capture_output=True,
            text=True,
            check=False,
            cwd=base,
            **user,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr == f"merge: {props}: cannot write: Permission denied\n"
        assert list(folder.iterdir()) == []  # nothing written, no temporary file left
    finally:
        with contextlib.suppress(FileNotFoundError):
            folder.chmod(0o755)
        shutil.rmtree(base)


# --- battery-thresholds ----------------------------------------------------------------------------


@FUZZ
@given(start=FILE_BYTES, stop=FILE_BYTES)
def test_battery_thresholds_any_sysfs_content_is_one_line_per_battery(
    tmp_path: Path, start: bytes, stop: bytes
) -> None:
    root = tmp_path / "sys"
    for name in ("BAT0", "BAT1"):
        folder = root / "class" / "power_supply" / name
        folder.mkdir(parents=True, exist_ok=True)
    bat0 = root / "class" / "power_supply" / "BAT0"
    (bat0 / "charge_control_start_threshold").write_bytes(start)
    (bat0 / "charge_control_end_threshold").write_bytes(stop)
    bat1 = root / "class" / "power_supply" / "BAT1"
    (bat1 / "charge_control_start_threshold").write_text("0\n")
    (bat1 / "charge_control_end_threshold").write_text("100\n")
    argv = ["--driver", "natacpi", "--sysfs-root", str(root), "BAT0:40:80", "BAT1:40:80"]
    code, out, err = run_main(battery.main, argv)
    assert code in (0, 1)
    # BAT1 is set whatever BAT0's files held
    assert "battery BAT1: charge thresholds set to start 40, stop 80" in out
    assert all(line.startswith("battery-thresholds: battery BAT0: ") for line in err.splitlines())


@FUZZ
@given(
    limits=st.lists(st.text(max_size=30), min_size=1, max_size=3),
    driver=st.sampled_from(battery.DRIVERS),
)
def test_battery_thresholds_any_argument_ends_with_a_documented_code(
    tmp_path: Path, limits: list[str], driver: str
) -> None:
    limits = [limit for limit in limits if not limit.startswith("-")] or ["x"]
    argv = [
        "--driver",
        driver,
        "--sysfs-root",
        str(tmp_path),
        "--tpacpi-bat",
        "/nonexistent",
        *limits,
    ]
    code, _, _ = run_main(battery.main, argv)
    assert code in (1, 2)  # nothing exists to take a value here


def test_battery_thresholds_without_tpacpi_bat_refuses_the_battery(tmp_path: Path) -> None:
    argv = ["--driver", "tpacpi-bat", "--tpacpi-bat", str(tmp_path / "none"), "1:40:80"]
    code, _, err = run_main(battery.main, argv)
    assert code == 1
    assert (
        err.startswith("battery-thresholds: battery 1: ")
        and f"cannot run {tmp_path / 'none'}" in err
    )
    assert len(err.splitlines()) == 1


def test_battery_thresholds_reads_tpacpi_bat_output_that_is_not_utf8(tmp_path: Path) -> None:
    fake = tmp_path / "tpacpi-bat"
    fake.write_text("#!/bin/sh\nprintf '\\377\\376 garbage\\n'\n")
    fake.chmod(0o755)
    argv = ["--driver", "tpacpi-bat", "--tpacpi-bat", str(fake), "1:40:80"]
    code, _, _ = run_main(battery.main, argv)
    assert code in (0, 1)


# --- cephfs-du -------------------------------------------------------------------------------------


def _reader(values: dict[str, bytes]) -> Any:
    def read(path: str, name: str) -> bytes:
        return values[name.removeprefix("ceph.dir.")]

    return read


@FUZZ
@given(
    values=st.fixed_dictionaries(dict.fromkeys(cephfs_du.ATTRIBUTES, FILE_BYTES)),
    as_json=st.booleans(),
)
def test_cephfs_du_any_statistics_end_with_a_documented_code(
    tmp_path: Path, values: dict[str, bytes], as_json: bool
) -> None:
    (tmp_path / "child").mkdir(exist_ok=True)
    argv = [str(tmp_path), *(["--json"] if as_json else [])]
    out, err = io.StringIO(), io.StringIO()
    code = cephfs_du.main(argv, _reader(values), out, err)
    assert code in (0, 1)
    if code == 1:
        assert err.getvalue().count("\n") >= 1
    out.getvalue().encode("utf-8")  # printable: no lone surrogate reaches the terminal
    err.getvalue().encode("utf-8")


@FUZZ
@given(names=st.lists(st.binary(min_size=1, max_size=40), max_size=5))
def test_cephfs_du_any_file_names(tmp_path: Path, names: list[bytes]) -> None:
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    made = []
    for raw in names:
        name = raw.replace(b"/", b"_").replace(b"\0", b"_")
        if name in (b".", b".."):
            continue
        try:
            (folder / os.fsdecode(name)).write_bytes(b"x")
        except OSError:  # too long for the file system, ...
            continue
        made.append(name)
    good = {"rbytes": b"1", "rfiles": b"1", "rsubdirs": b"1", "rctime": b"1700000000.5"}
    for as_json in (False, True):
        out, err = io.StringIO(), io.StringIO()
        code = cephfs_du.main(
            [str(folder), *(["--json"] if as_json else [])], _reader(good), out, err
        )
        assert code == 0, err.getvalue()
        out.getvalue().encode("utf-8")
    for path in folder.iterdir():
        path.unlink()


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("rctime", b"99999999999999999"), ("rbytes", b"9" * 400)],
    ids=["rctime-after-year-9999", "rbytes-400-digits"],
)
def test_cephfs_du_out_of_range_statistics_are_unreadable_not_a_crash(
    tmp_path: Path, attribute: str, value: bytes
) -> None:
    values = {"rbytes": b"1", "rfiles": b"1", "rsubdirs": b"1", "rctime": b"1.0", attribute: value}
    out, err = io.StringIO(), io.StringIO()
    assert cephfs_du.main([str(tmp_path)], _reader(values), out, err) == 1
    assert err.getvalue().startswith(f"cephfs-du: {tmp_path}: unreadable CephFS statistics")


# --- ensure-printers -------------------------------------------------------------------------------

OFFICE_URI = "ipp://[2001:db8:1::2]/printers/sink"


def _lpadmin(folder: Path, code: int = 0, stderr: bytes = b"", stdout: bytes = b"") -> Path:
    """A stand-in lpadmin (a real program, so the program's own process handling is what runs):
    prints the given bytes and exits with the given status."""
    (folder / "lpadmin.err").write_bytes(stderr)
    (folder / "lpadmin.out").write_bytes(stdout)
    script = folder / "lpadmin"
    script.write_text(f'#!/bin/sh\ncat "$0.out"; cat "$0.err" >&2\nexit {code}\n')
    script.chmod(0o755)
    return script


def _printers(
    config: Path, conf: Path, state: Path, lpadmin: Path
) -> tuple[int, str, str, list[list[str]]]:
    """ensure-printers' main, recording each lpadmin command it runs (the real runner runs it)."""
    calls: list[list[str]] = []
    real = printers._run

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv[1:]))
        result: subprocess.CompletedProcess[str] = real(argv)
        return result

    argv = ["--config", str(config), "--printers-conf", str(conf), "--state", str(state)]
    with mock.patch.object(printers, "_run", run):
        code, out, err = run_main(printers.main, [*argv, "--lpadmin", str(lpadmin)])
    return code, out, err, calls


def _office_config(folder: Path, remove: bool = False) -> Path:
    config = folder / "printers.json"
    office = {"name": "office", "deviceUri": OFFICE_URI, "model": "everywhere"}
    config.write_text(json.dumps({"printers": [office], "removeUndeclared": remove}))
    return config


# printers.conf blocks as cupsd writes them, with any name and device URI in them
printers_conf_blocks = st.builds(
    lambda tag, name, uri, newline: newline.join(
        [f"<{tag} {name}>", "PrinterId 1", f"DeviceURI {uri}", f"</{tag}>", ""]
    ),
    st.sampled_from(["Printer", "DefaultPrinter", "Class"]),
    st.one_of(st.just("office"), st.text(min_size=1, max_size=20)),
    st.one_of(st.just(OFFICE_URI), st.text(max_size=40)),
    st.sampled_from(NEWLINES),
)


@st.composite
def printers_confs(draw: st.DrawFn) -> bytes:
    blocks = "".join(draw(st.lists(printers_conf_blocks, max_size=4)))
    return draw(
        st.one_of(
            FILE_BYTES,
            st.sampled_from(ENCODINGS).map(lambda enc: blocks.encode(enc, "replace")),
            st.builds(lambda raw: blocks.encode("utf-8", "surrogatepass") + raw, FILE_BYTES),
        )
    )


@FUZZ
@given(
    conf=printers_confs(),
    state=st.one_of(
        FILE_BYTES,
        st.just(b"[" * 100000),
        st.builds(lambda v: json.dumps({"printers": v}).encode(), json_values),
    ),
    remove=st.booleans(),
)
def test_ensure_printers_any_printers_conf_and_state_file(
    tmp_path: Path, conf: bytes, state: bytes, remove: bool
) -> None:
    folder = tmp_path / "printers"
    folder.mkdir(exist_ok=True)
    (folder / "printers.conf").write_bytes(conf)
    (folder / "state.json").write_bytes(state)
    code, out, err, calls = _printers(
        _office_config(folder, remove),
        folder / "printers.conf",
        folder / "state.json",
        _lpadmin(folder),
    )
    # lpadmin takes everything; a queue name lpadmin cannot be given (a NUL in it) is that
    # queue's failure alone
    assert code in (0, printers.EX_TEMPFAIL), err
    assert err == ""
    assert calls[0][:2] == ["-p", "office"]
    assert "printer office: " in out
    assert json.loads((folder / "state.json").read_text())["printers"]["office"] == {
        "deviceUri": OFFICE_URI,
        "model": "everywhere",
    }


@st.composite
def printer_configs(draw: st.DrawFn) -> bytes:
    """Configuration files: any bytes, deep nesting, or JSON of roughly the right shape with odd
    strings (NUL, lone surrogates, line breaks) and wrong types in it."""
    odd = st.text(max_size=12) | st.sampled_from(["a\0b", "\ud800", "x\ny", "-x", " "])
    printer = st.fixed_dictionaries(
        {"name": odd | json_values, "deviceUri": odd | json_values, "model": odd | json_values},
        optional={
            "location": odd | json_values,
            "description": odd | json_values,
            "ppdOptions": st.dictionaries(odd, odd, max_size=2) | json_values,
        },
    )
    shaped = {
        "printers": draw(st.lists(printer, max_size=3) | json_values),
        "defaultPrinter": draw(st.none() | odd | json_values),
        "removeUndeclared": draw(st.booleans() | json_values),
    }
    return draw(
        st.one_of(
            FILE_BYTES,
            st.just(b"[" * 100000),
            st.just(json.dumps(shaped).encode()),
            st.just(json.dumps(draw(json_values)).encode()),
        )
    )


@FUZZ
@given(content=printer_configs())
def test_ensure_printers_any_configuration_ends_with_a_documented_code(
    tmp_path: Path, content: bytes
) -> None:
    folder = tmp_path / "printers"
    folder.mkdir(exist_ok=True)
    config = folder / "printers.json"
    config.write_bytes(content)
    state = folder / "state.json"
    state.unlink(missing_ok=True)
    code, out, err, calls = _printers(config, folder / "printers.conf", state, _lpadmin(folder))
    assert code in (0, 2, printers.EX_TEMPFAIL)
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith(f"ensure-printers: {config}: ")
        assert calls == [] and not state.exists()
    else:
        assert err == ""
        # a printer lpadmin could not take is named on a line of its own
        assert (code == printers.EX_TEMPFAIL) == ("\nnot set up now: " in "\n" + out)


@FUZZ
@given(
    code=st.sampled_from([0, 1, 2, 126, 127]),
    stderr=FILE_BYTES,
    stdout=FILE_BYTES,
)
def test_ensure_printers_any_lpadmin_output_is_one_line_per_printer(
    tmp_path: Path, code: int, stderr: bytes, stdout: bytes
) -> None:
    folder = tmp_path / "printers"
    folder.mkdir(exist_ok=True)
    state = folder / "state.json"
    state.unlink(missing_ok=True)
    lpadmin = _lpadmin(folder, code, stderr, stdout)
    done, out, err, calls = _printers(
        _office_config(folder), folder / "printers.conf", state, lpadmin
    )
    assert err == ""
    assert [call[:2] for call in calls] == [["-p", "office"]]
    if code == 0:
        assert (done, out) == (0, "printer office: set up\n")
    else:
        assert done == printers.EX_TEMPFAIL
        lines = out.splitlines()
        assert len(lines) == 2, out
        assert lines[0].startswith("<4>printer office: could not be set up now: ")
        assert lines[1] == "not set up now: office"


def test_ensure_printers_process_reports_a_bad_configuration_without_a_traceback(
    tmp_path: Path,
) -> None:
    script = REPO / "pkgs" / "ensure-printers" / "ensure_printers.py"
    for content in (b"\xff\xfe{", b"[" * 100000):
        config = tmp_path / "printers.json"
        config.write_bytes(content)
        done = subprocess.run(
            [sys.executable, str(script), "--config", str(config), "--state", str(tmp_path / "s")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1
        assert done.stderr.startswith(f"ensure-printers: {config}: ")


# --- bond-macs -------------------------------------------------------------------------------------

BOND_MAC = "fe:80:12:04:6d:6f"

bond_args = st.one_of(
    st.builds(
        lambda name, sep, mac: name + sep + mac,
        st.sampled_from(["bond0", "bond1", "", ".", "..", "b" * 16, "bönd0"])
        | st.text(max_size=16),
        st.sampled_from(["=", "", "=="]),
        st.sampled_from(
            [BOND_MAC, BOND_MAC.upper(), "01:00:5e:00:00:01", "00:00:00:00:00:00", BOND_MAC[:-3]]
        )
        | st.text(max_size=20),
    ),
    st.binary(max_size=30).map(os.fsdecode),  # as Python decodes an argv that is not UTF-8
    st.sampled_from(["-h", "--help", "--", "-x"]),
)


def _no_netlink() -> Any:
    raise PermissionError(1, "Operation not permitted")


@FUZZ
@given(args=st.lists(bond_args, max_size=4))
def test_bond_macs_any_arguments_end_with_a_documented_code(args: list[str]) -> None:
    with mock.patch.object(bond_macs, "open_socket", _no_netlink):
        code, out, err = run_main(bond_macs.main, args)
    assert code in (0, 1, 2)
    if code == 0:
        assert args[0] in ("-h", "--help") and "bond-macs BOND=MAC" in out
        return
    assert len(err.splitlines()) == 1 and err.startswith("bond-macs: ")
    err.encode("utf-8")  # printable: an undecodable argument is shown escaped
    if code == 1:  # the arguments were good: only the socket failed
        assert err == "bond-macs: cannot listen to rtnetlink: Operation not permitted\n"


def _rtattr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


INT32 = st.integers(-(2**31), 2**31 - 1)

# the attributes of an RTM_NEWLINK (include/uapi/linux/if_link.h), right and wrong
link_attributes = st.lists(
    st.one_of(
        st.builds(
            lambda name: _rtattr(3, name),  # IFLA_IFNAME
            st.sampled_from([b"bond0\0", b"bond0", b"bond1\0", b"bond0\0x"])
            | st.binary(max_size=20),
        ),
        st.builds(
            lambda mac: _rtattr(1, mac),  # IFLA_ADDRESS
            st.sampled_from([bytes.fromhex("fe8012046d6f"), bytes.fromhex("14feb5c662e0")])
            | st.binary(max_size=10),
        ),
        st.builds(
            lambda kind, nested: _rtattr(18 | nested, _rtattr(1, kind)),  # IFLA_LINKINFO
            st.sampled_from([b"bond\0", b"bond", b"bridge\0"]) | st.binary(max_size=10),
            st.sampled_from([0, 0x8000]),
        ),
        st.builds(_rtattr, st.integers(0, 0xFFFF), st.binary(max_size=16)),
        st.binary(max_size=12),  # not an attribute at all
    ),
    max_size=5,
)


# a notification of the listed bond with another MAC, its attributes in any order among others
bond0_elsewhere = st.builds(
    lambda attrs, extra: attrs + extra,
    st.permutations(
        [
            _rtattr(3, b"bond0\0"),
            _rtattr(1, bytes.fromhex("14feb5c662e0")),
            _rtattr(18, _rtattr(1, b"bond\0")),
        ]
    ),
    link_attributes,
)


@st.composite
def netlink_messages(draw: st.DrawFn) -> bytes:
    """One netlink message (include/uapi/linux/netlink.h): a link notification, an error or ACK,
    anything else; its length right, wrong or cut short."""
    kind = draw(st.sampled_from([16, 16, 16, 2, 2, 3, 17, -1]))
    if kind < 0:
        kind = draw(st.integers(0, 0xFFFF))
    seq = draw(st.integers(0, 4) | st.integers(0, 2**32 - 1))
    if kind == 16:  # RTM_NEWLINK: ifinfomsg + attributes
        payload = struct.pack("=BxHiII", 0, 1, draw(INT32), 0, 0)
        payload += b"".join(draw(bond0_elsewhere | link_attributes))
    elif kind == 2:  # NLMSG_ERROR: a (negative) errno, then the request's header
        payload = struct.pack("=i", draw(st.sampled_from([0, -19, -99]) | INT32))
        payload += draw(st.binary(max_size=16))
    else:
        payload = draw(st.binary(max_size=32))
    # mostly well framed (so that what follows the framing is reached), else a wrong length or cut
    length = 16 + len(payload)
    if draw(st.integers(0, 3)) == 0:
        length = draw(st.integers(0, 2**32 - 1))
    message = struct.pack("=IHHII", length, kind, 0, seq, 0) + payload + b"\0" * (-len(payload) % 4)
    if draw(st.integers(0, 3)) == 0:
        message = message[: draw(st.integers(0, len(message)))]
    return message


ENOBUFS = OSError(105, "No buffer space available")


@st.composite
def netlink_reads(draw: st.DrawFn) -> list[bytes | OSError]:
    """What the socket's reads return: datagrams of messages mostly, else any bytes or ENOBUFS."""
    reads: list[bytes | OSError] = []
    for what in draw(st.lists(st.sampled_from("mmmmbe"), max_size=6)):
        if what == "m":
            reads.append(b"".join(draw(st.lists(netlink_messages(), min_size=1, max_size=4))))
        elif what == "b":
            reads.append(draw(st.binary(min_size=1, max_size=64)))
        else:
            reads.append(ENOBUFS)
    return reads


class _Netlink:
    """A netlink socket that delivers the given datagrams (or errors), then fails as a closed one
    does; records what the program sends."""

    def __init__(self, reads: list[bytes | OSError]) -> None:
        self.reads = list(reads)
        self.sent: list[bytes] = []

    def __enter__(self) -> _Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.reads:
            raise OSError(9, "Bad file descriptor")
        read = self.reads.pop(0)
        if isinstance(read, OSError):
            raise read
        return read


@FUZZ
@given(reads=netlink_reads())
def test_bond_macs_any_netlink_messages_end_with_a_documented_code(
    reads: list[bytes | OSError],
) -> None:
    sock = _Netlink(reads)
    with mock.patch.object(bond_macs, "open_socket", lambda: sock):
        code, _, err = run_main(bond_macs.main, [f"bond0={BOND_MAC}"])
    # the socket ends failing (or empty): one line, exit 1 (systemd restarts the daemon)
    assert code == 1
    assert err.splitlines()[-1] in (
        "bond-macs: rtnetlink failed: Bad file descriptor",
        "bond-macs: rtnetlink failed: an empty read",
    )
    assert all(line.startswith("bond-macs: ") for line in err.splitlines())
    for data in sock.sent:  # only link dumps, and the configured MAC set on some bond0
        length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", data)
        assert length == len(data)
        if kind == 18:
            assert flags == 0x301
        else:
            assert (kind, flags, len(data)) == (19, 0x5, 16 + 16 + 12)
            assert data[32:42] == struct.pack("=HH", 10, 1) + bytes.fromhex("fe8012046d6f")


def test_bond_macs_a_refusal_with_any_errno_is_one_line() -> None:
    """An NLMSG_ERROR answering its RTM_SETLINK may hold any int: os.strerror(2**31) overflowed."""
    for error in (-(2**31), 2**31 - 1, -1, -4096):
        log: list[str] = []
        sock = _Netlink([])
        keeper = bond_macs.Keeper(sock, {"bond0": BOND_MAC}, log.append)
        info = _rtattr(18, _rtattr(1, b"bond\0"))
        body = struct.pack("=BxHiII", 0, 1, 5, 0, 0) + _rtattr(3, b"bond0\0") + info
        body += _rtattr(1, bytes.fromhex("14feb5c662e0"))
        keeper.handle(struct.pack("=IHHII", 16 + len(body), 16, 0, 0, 0) + body)
        nack = struct.pack("=i", error) + b"\0" * 16
        keeper.handle(struct.pack("=IHHII", 16 + len(nack), 2, 0, 1, 0) + nack)
        assert len(log) == 2 and log[1].startswith("bond0: MAC 14:fe:b5:c6:62:e0, setting")
        assert "the kernel refused: " in log[1]


def test_bond_macs_process_reports_bad_arguments_without_a_traceback() -> None:
    script = REPO / "pkgs" / "bond-macs" / "bond_macs.py"
    done = subprocess.run(
        [sys.executable, str(script), os.fsdecode(b"bond0=\xff\xfe")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr
        == "bond-macs: 'bond0=\\udcff\\udcfe': '\\udcff\\udcfe' is not a MAC address such as fe:80:12:04:6d:6f\n"
    )


# --- every host program is fuzzed ------------------------------------------------------------------

# pkgs/<name>/<module>.py programs the hosts run -> the hypothesis tests above that fuzz its inputs
FUZZED: dict[str, tuple[Any, ...]] = {
    "iscsi-ifaces/iscsi_ifaces.py": (
        test_iscsi_ifaces_any_chap_file_fails_its_target_only,
        test_iscsi_ifaces_any_configuration_ends_with_a_documented_code,
    ),
    "cloudstack-agent-config/cloudstack_agent_config.py": (
        test_agent_config_merge_takes_any_properties_state_and_template,
        test_agent_config_any_declaration_ends_with_a_documented_code,
        test_agent_config_any_setup_or_service_arguments_end_with_a_documented_code,
    ),
    "battery-thresholds/battery_thresholds.py": (
        test_battery_thresholds_any_sysfs_content_is_one_line_per_battery,
        test_battery_thresholds_any_argument_ends_with_a_documented_code,
    ),
    "cephfs-du/cephfs_du.py": (
        test_cephfs_du_any_statistics_end_with_a_documented_code,
        test_cephfs_du_any_file_names,
    ),
    "ensure-printers/ensure_printers.py": (
        test_ensure_printers_any_printers_conf_and_state_file,
        test_ensure_printers_any_configuration_ends_with_a_documented_code,
        test_ensure_printers_any_lpadmin_output_is_one_line_per_printer,
    ),
    "bond-macs/bond_macs.py": (
        test_bond_macs_any_arguments_end_with_a_documented_code,
        test_bond_macs_any_netlink_messages_end_with_a_documented_code,
    ),
}

# Python under pkgs/ that no host runs (what it reads comes from the repository or the build)
NOT_ON_HOSTS = {
    "cloudstack-agent/agent_path.py": "runs at build time over the packaged agent's scripts",
}


def _installs(package: str, file: str) -> bool:
    """Whether pkgs/<package>/package.nix ships `file`: it is the package's source (`src =
    ./file`, a fileset) rather than only a build step's input (`${./file}`)."""
    nix = (REPO / "pkgs" / package / "package.nix").read_text()
    return re.search(rf"(?<!\$\{{)\./{re.escape(file)}\b", nix) is not None


def test_every_host_program_is_fuzzed() -> None:
    """A new program under pkgs/ fails here until its inputs are fuzzed above (or it is shown not
    to be installed on hosts)."""
    pkgs = REPO / "pkgs"
    found = {path.relative_to(pkgs).as_posix() for path in pkgs.rglob("*.py")}
    unknown = found - set(FUZZED) - set(NOT_ON_HOSTS)
    assert not unknown, f"host programs without a fuzz test in {Path(__file__).name}: {unknown}"
    assert set(FUZZED) | set(NOT_ON_HOSTS) <= found, "listed programs that no longer exist"
    for path, tests in FUZZED.items():
        package, file = path.split("/")
        assert _installs(package, file), f"{path}: package.nix does not ship it"
        assert tests and all(getattr(t, "is_hypothesis_test", False) for t in tests), path
    for path in NOT_ON_HOSTS:
        package, file = path.split("/")
        assert not _installs(package, file), f"{path} is shipped: fuzz it like the others"
