"""pkgs/ensure-printers and the print paths of the printing capability against real cupsd processes
on loopback (tests/private_cupsd.py): Debian 12's CUPS, and the pinned CUPS 2.4.19 when it was
built from source under /opt/cups-2.4.19 (docs/laptops.md says how). Without CUPS the tests skip;
under CI (which installs Debian's `cups`) they fail instead.

What the versions showed (written down from these tests' runs):
- CUPS 2.4.19 (built from source): `lpadmin -p office -v URI -m everywhere -E` for an existing
  queue whose printer is unreachable fails ("lpadmin: Unable to connect to ::1:PORT: Host is
  down") and the queue is gone at once from `lpstat -v` and after a restart of cupsd; the
  settings-only `lpadmin -p office -L desk -E` that ensure-printers runs instead keeps it.
- Debian's 2.4.2: the same failed query returns 0 (cupsd answers before its query) and the queue
  stays: the 2.4.12 change (commit 2e3f158) is not in it.
- Both: the device URI `ipp://[::1]:PORT/printers/sink` is stored and shown as given, and the lpd
  backend delivers a raw job to `lpd://[::1]:PORT/lp`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import host_program
from private_cupsd import CupsInstall, PrivateCupsd, installs

ep = host_program("ensure-printers")

INSTALLS = installs()
SAMPLE = "drv:///sample.drv/generic.ppd"


def _require_cups() -> None:
    why = None
    if os.environ.get("KVMFLEET_SKIP_CUPS"):
        # the flake's pytest check: a build sandbox has neither root nor a CUPS to find
        pytest.skip("KVMFLEET_SKIP_CUPS is set")
    if not INSTALLS:
        why = "CUPS is not installed (Debian: apt-get install cups)"
    elif os.geteuid() != 0:
        why = "a private cupsd runs its backends as root: run as root"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI is set")
        pytest.skip(why)


@pytest.fixture(params=INSTALLS or [None], ids=lambda i: i.label if i else "no-cups")
def install(request: pytest.FixtureRequest) -> CupsInstall:
    _require_cups()
    value: CupsInstall = request.param
    return value


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[PrivateCupsd]:
    """The network printer: Debian's cupsd with a shared queue `sink` (its cups-filters give it
    the PDF and raster formats an IPP Everywhere client requires; a 2.4.19 built without them is
    refused by 2.4.19's own check)."""
    _require_cups()
    debian = [i for i in INSTALLS if i.label.startswith("Debian")]
    if not debian:
        if os.environ.get("CI") and not os.environ.get("KVMFLEET_SKIP_CUPS"):
            pytest.fail("Debian's cups is not installed, and CI is set")
        pytest.skip("Debian's cups is not installed")
    server = PrivateCupsd(debian[0], tmp_path / "printer")
    server.start()
    result = server.run(
        "lpadmin", "-p", "sink", "-v", "file:///dev/null", "-m", SAMPLE, "-o",
        "printer-is-shared=true", "-E",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    yield server
    server.stop()


@pytest.fixture
def client(install: CupsInstall, tmp_path: Path) -> Iterator[PrivateCupsd]:
    """The laptop's cupsd."""
    server = PrivateCupsd(install, tmp_path / "client")
    server.start()
    yield server
    server.stop()


def _ensure(
    client: PrivateCupsd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    printers: list[dict[str, object]],
    default: str | None = None,
) -> int:
    config = tmp_path / "printers.json"
    config.write_text(__import__("json").dumps({"printers": printers, "defaultPrinter": default}))
    monkeypatch.setenv("CUPS_SERVER", f"127.0.0.1:{client.port}")
    code: int = ep.main(
        [
            "--config", str(config),
            "--printers-conf", str(client.printers_conf),
            "--state", str(tmp_path / "state.json"),
            "--lpadmin", client.install.program("lpadmin"),
        ]
    )  # fmt: skip
    return code


def test_a_driverless_queue_survives_a_boot_away_from_its_printer(
    printer: PrivateCupsd,
    client: PrivateCupsd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = f"ipp://[::1]:{printer.port}/printers/sink"
    office = {"name": "office", "deviceUri": uri, "model": "everywhere", "location": "desk"}
    assert _ensure(client, tmp_path, monkeypatch, [office], default="office") == 0
    assert client.devices() == {"office": uri}
    assert "<DefaultPrinter office>" in client.printers_conf.read_text()

    # the laptop boots away from the printer
    printer.stop()
    client.restart()
    assert _ensure(client, tmp_path, monkeypatch, [office], default="office") == 0
    client.restart()
    assert client.devices() == {"office": uri}, client.log()[-3000:]

    # what nixpkgs' ensure-printers runs instead: the pinned CUPS loses the queue
    full = client.run("lpadmin", "-p", "office", "-v", uri, "-m", "everywhere", "-E")
    client.restart()
    if client.install.temporary_on_failed_query:
        assert full.returncode == 1 and "Unable to connect" in full.stderr, full
        assert client.devices() == {}
    else:
        assert client.devices() == {"office": uri}


def test_a_driverless_printer_never_set_up_is_retried_until_it_is_reachable(
    printer: PrivateCupsd,
    client: PrivateCupsd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = f"ipp://[::1]:{printer.port}/printers/sink"
    office = {"name": "office", "deviceUri": uri, "model": "everywhere"}
    printer.stop()
    code = _ensure(client, tmp_path, monkeypatch, [office])
    if client.install.temporary_on_failed_query:
        assert code == ep.EX_TEMPFAIL
        client.restart()
        assert client.devices() == {}
    else:
        # 2.4.2 cannot tell: it answers before asking, and keeps a queue without the PPD
        assert code == 0
    printer.start()
    assert _ensure(client, tmp_path, monkeypatch, [office]) == 0
    client.restart()
    assert client.devices() == {"office": uri}


class LpdListener:
    """The receiving side of RFC 1179 on [::1]: "receive a printer job" (\\2queue), then its
    "receive control file" (\\2) and "receive data file" (\\3) subcommands, each acknowledged
    with a zero byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.bind(("::1", 0))
        self.sock.listen(1)
        self.port: int = self.sock.getsockname()[1]
        self.queue: str | None = None
        self.files: dict[str, bytes] = {}
        self.peer: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, peer = self.sock.accept()
        self.peer = peer[0]
        with conn, conn.makefile("rb") as stream:
            line = stream.readline()
            assert line[:1] == b"\2", line
            self.queue = line[1:].strip().decode()
            conn.sendall(b"\0")
            while header := stream.readline():
                kind, rest = header[:1], header[1:].decode().split()
                assert kind in (b"\2", b"\3"), header
                size, name = int(rest[0]), rest[1]
                conn.sendall(b"\0")
                self.files[name] = stream.read(size)
                assert stream.read(1) == b"\0"
                conn.sendall(b"\0")

    def data(self) -> bytes:
        return b"".join(v for k, v in self.files.items() if k.startswith("df"))


def test_a_raw_job_reaches_an_lpd_printer_over_ipv6(
    client: PrivateCupsd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = LpdListener()
    uri = f"lpd://[::1]:{listener.port}/lp"
    lpd6 = {"name": "lpd6", "deviceUri": uri, "model": SAMPLE}
    assert _ensure(client, tmp_path, monkeypatch, [lpd6]) == 0
    assert client.devices() == {"lpd6": uri}
    page = tmp_path / "page.txt"
    page.write_text("test page over LPD\n")
    result = client.run("lp", "-d", "lpd6", "-o", "raw", "-t", "lpd-page", str(page))
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 60
    while not listener.data() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert listener.peer == "::1"
    assert listener.queue == "lp"
    assert listener.data() == b"test page over LPD\n", (listener.files, client.log()[-3000:])
