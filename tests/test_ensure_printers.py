"""The host-side printer set-up (pkgs/ensure-printers) against a model of cupsd and lpadmin: which
lpadmin calls it makes, what it keeps, what it records, how it fails. tests/test_printing_cups.py
runs the same program against real cupsd processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import host_program

ep = host_program("ensure-printers")

OFFICE = "ipp://[2001:db8:1::2]/printers/sink"


@dataclass
class Queue:
    name: str
    uri: str
    model: str
    temporary: bool = False
    location: str = ""


class FakeCups:
    """cupsd and lpadmin as CUPS's source has them (systemv/lpadmin.c, scheduler/ipp.c
    add_printer and create_local_bg_thread, scheduler/printers.c cupsdSaveAllPrinters), and as
    real cupsd processes showed them (tests/test_printing_cups.py):

    - `-m everywhere` makes cupsd ask the device URI's printer. Unreachable: since 2.4.12 the
      queue, new or old, becomes temporary (deleted within minutes and at shutdown, never in
      printers.conf) and lpadmin fails with "Unable to connect to HOST:PORT: ..."; 2.4.2 (Debian
      12) answers lpadmin before the query and keeps the queue.
    - other models are local files: nothing is asked.
    - printers.conf holds the permanent queues, `<Printer NAME>` ... `DeviceURI URI` ...
      `</Printer>`, the default one as `<DefaultPrinter NAME>`.
    """

    def __init__(self, conf: Path, version: tuple[int, int, int] = (2, 4, 19)) -> None:
        self.conf = conf
        self.version = version
        self.queues: dict[str, Queue] = {}
        self.default: str | None = None
        self.reachable: set[str] = set()
        self.calls: list[list[str]] = []
        self.save()

    def save(self) -> None:
        lines = ["# Printer configuration file for CUPS v2.4.19", "# Written by cupsd"]
        for key, queue in sorted(self.queues.items()):
            if queue.temporary:
                continue
            tag = "DefaultPrinter" if key == self.default else "Printer"
            uri = queue.uri.replace("\\", "\\\\").replace("#", "\\#")
            lines += [f"<{tag} {queue.name}>", "PrinterId 1", f"DeviceURI {uri}", f"</{tag}>"]
        self.conf.write_text("\n".join(lines) + "\n")

    def shutdown(self) -> None:
        """cupsd stops: temporary queues are gone."""
        self.queues = {k: q for k, q in self.queues.items() if not q.temporary}
        self.save()

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = list(argv[1:])
        self.calls.append(args)
        result = self._lpadmin(args)
        self.save()
        return subprocess.CompletedProcess(argv, result[0], "", result[1])

    def _lpadmin(self, args: list[str]) -> tuple[int, str]:
        opts: dict[str, str] = {}
        for flag, value in zip(args[::2], args[1::2], strict=False):
            opts[flag] = value
        if args[0] == "-d":
            if args[1].lower() not in self.queues:
                return 1, "lpadmin: The printer or class does not exist.\n"
            self.default = args[1].lower()
            return 0, ""
        if args[0] == "-x":
            if self.queues.pop(args[1].lower(), None) is None:
                return 1, "lpadmin: The printer or class does not exist.\n"
            return 0, ""
        assert args[0] == "-p" and args[-1] == "-E", args
        name = args[1]
        queue = self.queues.setdefault(name.lower(), Queue(name, "file:///dev/null", "raw"))
        queue.location = opts.get("-L", queue.location)
        if "-v" in opts:
            queue.uri = opts["-v"]
        if "-m" in opts:
            queue.model = opts["-m"]
            if opts["-m"] == "everywhere" and queue.uri not in self.reachable:
                if self.version < (2, 4, 12):
                    return 0, ""
                queue.temporary = True
                return 1, "lpadmin: Unable to connect to 2001:db8:1::2:631: No route to host\n"
        return 0, ""


def _config(tmp_path: Path, printers: list[dict[str, object]], **extra: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"printers": printers, **extra}))
    return path


def _office(**overrides: object) -> dict[str, object]:
    return {"name": "office", "deviceUri": OFFICE, "model": "everywhere", **overrides}


def _run(cups: FakeCups, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(ep, "_run", cups)
    code: int = ep.main(
        [
            "--config",
            str(config),
            "--printers-conf",
            str(cups.conf),
            "--state",
            str(tmp_path / "state" / "state.json"),
            "--lpadmin",
            "lpadmin",
        ]
    )
    return code


def test_a_driverless_queue_set_up_once_survives_a_boot_away_from_its_printer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    cups.reachable.add(OFFICE)
    config = _config(tmp_path, [_office(location="desk")], defaultPrinter="office")
    assert _run(cups, tmp_path, config, monkeypatch) == 0
    assert cups.calls == [
        ["-p", "office", "-v", OFFICE, "-m", "everywhere", "-L", "desk", "-E"],
        ["-d", "office"],
    ]
    assert "printer office: set up" in capsys.readouterr().out

    # next boot, away: the queue is left as it is, and so survives cupsd's shutdown
    cups.shutdown()
    cups.reachable.clear()
    cups.calls.clear()
    assert _run(cups, tmp_path, config, monkeypatch) == 0
    assert cups.calls == [["-p", "office", "-L", "desk", "-E"], ["-d", "office"]]
    cups.shutdown()
    assert "office" in cups.queues
    assert f"DeviceURI {OFFICE}" in cups.conf.read_text()
    assert "printer office: kept as it is" in capsys.readouterr().out


def test_a_queue_from_before_this_program_is_kept_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set up by nixpkgs' ensure-printers: in printers.conf, no state recorded yet."""
    cups = FakeCups(tmp_path / "printers.conf")
    cups.queues["office"] = Queue("office", OFFICE, "everywhere")
    cups.save()
    assert _run(cups, tmp_path, _config(tmp_path, [_office()]), monkeypatch) == 0
    assert cups.calls == [["-p", "office", "-E"]]
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state == {"printers": {"office": {"deviceUri": OFFICE, "model": "everywhere"}}}


def test_a_printer_never_set_up_is_asked_and_retried_until_it_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    lpd = {
        "name": "lpd6",
        "deviceUri": "lpd://printer6.test/sink",
        "model": "drv:///sample.drv/generic.ppd",
    }
    config = _config(tmp_path, [_office(), lpd])
    assert _run(cups, tmp_path, config, monkeypatch) == ep.EX_TEMPFAIL
    out = capsys.readouterr().out
    assert "<4>printer office: could not be set up now: lpadmin: Unable to connect" in out
    assert "not set up now: office" in out
    # the others are set up all the same; the failed one is not recorded and not in printers.conf
    assert "lpd6" in cups.queues
    assert "office" not in json.loads((tmp_path / "state" / "state.json").read_text())["printers"]
    cups.shutdown()
    assert "office" not in cups.queues

    cups.reachable.add(OFFICE)
    cups.calls.clear()
    assert _run(cups, tmp_path, config, monkeypatch) == 0
    assert cups.calls[0] == ["-p", "office", "-v", OFFICE, "-m", "everywhere", "-E"]
    cups.shutdown()
    assert "office" in cups.queues


def test_a_new_device_uri_or_model_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    other = "ipp://[2001:db8:1::3]/ipp/print"
    cups.reachable |= {OFFICE, other}
    assert _run(cups, tmp_path, _config(tmp_path, [_office()]), monkeypatch) == 0
    cups.calls.clear()
    assert _run(cups, tmp_path, _config(tmp_path, [_office(deviceUri=other)]), monkeypatch) == 0
    assert cups.calls == [["-p", "office", "-v", other, "-m", "everywhere", "-E"]]

    # a driver model recorded, now driverless: the same URI, but the printer must be asked
    generic = "drv:///sample.drv/generic.ppd"
    assert _run(cups, tmp_path, _config(tmp_path, [_office(model=generic)]), monkeypatch) == 0
    cups.calls.clear()
    assert _run(cups, tmp_path, _config(tmp_path, [_office()]), monkeypatch) == 0
    assert cups.calls == [["-p", "office", "-v", OFFICE, "-m", "everywhere", "-E"]]


def test_driver_models_are_always_set_up_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    lpd = {
        "name": "lpd6",
        "deviceUri": "lpd://printer6.test/sink",
        "model": "drv:///sample.drv/generic.ppd",
        "description": "LPD over IPv6",
        "ppdOptions": {"PageSize": "A4", "Duplex": "None"},
    }
    config = _config(tmp_path, [lpd])
    for _ in range(2):
        assert _run(cups, tmp_path, config, monkeypatch) == 0
    full = [
        "-p",
        "lpd6",
        "-v",
        "lpd://printer6.test/sink",
        "-m",
        "drv:///sample.drv/generic.ppd",
        "-D",
        "LPD over IPv6",
        "-o",
        "Duplex=None",
        "-o",
        "PageSize=A4",
        "-E",
    ]
    assert cups.calls == [full, full]


def test_undeclared_queues_are_removed_ignoring_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    cups.queues["office"] = Queue("Office", OFFICE, "everywhere")
    cups.queues["byhand"] = Queue("byhand", "socket://10.0.0.9", "raw")
    cups.save()
    config = _config(tmp_path, [_office()], removeUndeclared=True)
    assert _run(cups, tmp_path, config, monkeypatch) == 0
    assert cups.calls == [["-p", "office", "-E"], ["-x", "byhand"]]
    assert set(cups.queues) == {"office"}


def test_a_default_printer_that_could_not_be_set_up_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    config = _config(tmp_path, [_office()], defaultPrinter="office")
    assert _run(cups, tmp_path, config, monkeypatch) == ep.EX_TEMPFAIL
    assert cups.calls[-1] == ["-d", "office"]


def test_cups_2_4_2_keeps_a_queue_whose_query_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake's 2.4.2 (Debian 12) side: lpadmin succeeds, the queue stays."""
    cups = FakeCups(tmp_path / "printers.conf", version=(2, 4, 2))
    assert _run(cups, tmp_path, _config(tmp_path, [_office()]), monkeypatch) == 0
    cups.shutdown()
    assert "office" in cups.queues


def test_printers_conf_is_read_as_cupsd_writes_it(tmp_path: Path) -> None:
    conf = tmp_path / "printers.conf"
    conf.write_text(
        "# Written by cupsd\nNextPrinterId 3\n"
        "<DefaultPrinter Office>\nPrinterId 1\nInfo a \\# b\nDeviceURI ipp://h/x\\#y\n"
        "</DefaultPrinter>\n"
        "<Printer lpd6>\nDeviceURI lpd://printer6.test/sink\n</Printer>\n"
    )
    assert ep.read_queues(conf) == {
        "office": ("Office", "ipp://h/x#y"),
        "lpd6": ("lpd6", "lpd://printer6.test/sink"),
    }
    assert ep.read_queues(tmp_path / "absent") == {}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"printers": {}}, "printers: expected a list"),
        ({"printers": [{"name": "a", "model": "everywhere"}]}, "printers[0].deviceUri: expected"),
        (
            {"printers": [_office(ppdOptions={"PageSize": 4})]},
            "printers[0].ppdOptions: expected an object of strings",
        ),
        ({"printers": [], "removeUndeclared": "yes"}, "removeUndeclared: expected true or false"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, object],
    message: str,
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    cups = FakeCups(tmp_path / "printers.conf")
    assert _run(cups, tmp_path, path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ensure-printers: {path}: {message}") and err.count("\n") == 1
    assert cups.calls == []


def test_an_unreadable_printers_conf_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cups = FakeCups(tmp_path / "printers.conf")
    cups.conf.unlink()
    cups.conf.mkdir()  # read fails, as for a file root cannot read
    assert _run(cups, tmp_path, _config(tmp_path, [_office()]), monkeypatch) == 1
    assert cups.calls == []
    assert "ensure-printers: cannot read" in capsys.readouterr().err


def test_a_missing_lpadmin_is_a_failure_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "printers.conf"
    config = _config(tmp_path, [_office()])
    argv = ["--config", str(config), "--printers-conf", str(conf)]
    argv += ["--state", str(tmp_path / "state.json"), "--lpadmin", str(tmp_path / "no-lpadmin")]
    assert ep.main(argv) == ep.EX_TEMPFAIL
    out = capsys.readouterr().out
    assert f"printer office: could not be set up now: {tmp_path}/no-lpadmin: No such file" in out
