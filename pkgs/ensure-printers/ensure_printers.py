#!/usr/bin/env python3
"""Set up the declared CUPS printers without losing one that is away.

    ensure-printers --config FILE [--printers-conf FILE] [--state FILE] [--lpadmin PROGRAM]

FILE is JSON: {"printers": [{"name", "deviceUri", "model", "location"?, "description"?,
"ppdOptions"?}], "defaultPrinter": NAME or null, "removeUndeclared": bool}, as NixOS's
hardware.printers declares them.

`lpadmin -m everywhere` asks the printer for its capabilities, in cupsd. Since CUPS 2.4.12 a failed
query marks the queue temporary (scheduler/ipp.c, create_local_bg_thread: "Force printer to
timeout and be deleted"), also a queue that already existed: cupsd drops it with its PPD and held
jobs within minutes and at shutdown. A laptop that boots away from its printer lost the queue that
way. So a driverless queue that cupsd already keeps (printers.conf, which lists permanent queues
only) with the same device URI, and whose model was not changed since it was set up (the state
file), is not queried again: only its location, description and options are set. Every other
printer gets the full `lpadmin -p -v -m` (driver models are local files: nothing is asked).

Exit status 0 when every printer is set up, 75 (EX_TEMPFAIL) when some could not be now (the
caller retries; each is one line naming it), 1 when printers.conf cannot be read, 2 on bad
arguments or a bad config (one line naming the file). A state file that cannot be read or written
is one line and costs only a query of the printers it names.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EX_TEMPFAIL = 75
DRIVERLESS = "everywhere"


class ConfigError(Exception):
    """The config file is not what the NixOS module writes."""


class CupsFileError(Exception):
    """printers.conf or the state file cannot be read."""


@dataclass(frozen=True)
class Printer:
    name: str
    device_uri: str
    model: str
    location: str | None = None
    description: str | None = None
    ppd_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    printers: tuple[Printer, ...]
    default: str | None
    remove_undeclared: bool


def _passable(value: str) -> bool:
    """A string a program can be given as an argument: UTF-8 (no lone surrogate), no NUL."""
    try:
        return "\0" not in value and bool(value.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _string(entry: Mapping[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = entry.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or not _passable(value):
        raise ConfigError(f"{where}.{key}: expected a non-empty string (UTF-8, no NUL)")
    return value


def parse_config(data: Any) -> Config:
    if not isinstance(data, dict) or not isinstance(data.get("printers"), list):
        raise ConfigError("printers: expected a list")
    printers = []
    for index, entry in enumerate(data["printers"]):
        where = f"printers[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        options = entry.get("ppdOptions") or {}
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _passable(k) and _passable(v or "x")
            for k, v in options.items()
        ):
            raise ConfigError(f"{where}.ppdOptions: expected an object of strings (UTF-8, no NUL)")
        printers.append(
            Printer(
                name=str(_string(entry, "name", where)),
                device_uri=str(_string(entry, "deviceUri", where)),
                model=str(_string(entry, "model", where)),
                location=_string(entry, "location", where, optional=True),
                description=_string(entry, "description", where, optional=True),
                ppd_options=dict(options),
            )
        )
    default = data.get("defaultPrinter")
    if default is not None and (not isinstance(default, str) or not _passable(default)):
        raise ConfigError("defaultPrinter: expected a string (UTF-8, no NUL) or null")
    remove = data.get("removeUndeclared", False)
    if not isinstance(remove, bool):
        raise ConfigError("removeUndeclared: expected true or false")
    return Config(tuple(printers), default, remove)


def _unescape(value: str) -> str:
    """cupsFilePutConf escapes #, \\, newline and CR with a backslash."""
    out, escaped = [], False
    for char in value:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def read_queues(path: Path) -> dict[str, tuple[str, str | None]]:
    """The permanent queues in cupsd's printers.conf (cupsdSaveAllPrinters skips classes and
    temporary queues): lower-cased name -> (name, device URI). No file: no queue yet."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CupsFileError(f"cannot read {path}: {err.strerror or err}") from None
    queues: dict[str, tuple[str, str | None]] = {}
    current: str | None = None
    uri: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("<Printer ", "<DefaultPrinter ")) and line.endswith(">"):
            current, uri = line[line.index(" ") + 1 : -1], None
        elif line in ("</Printer>", "</DefaultPrinter>") and current is not None:
            queues[current.lower()] = (current, uri)
            current = None
        elif current is not None and line.startswith("DeviceURI "):
            uri = _unescape(line[len("DeviceURI ") :])
    return queues


def read_state(path: Path) -> dict[str, dict[str, str]]:
    """What this program last set up: lower-cased name -> {"deviceUri", "model"}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as err:
        # A broken state file only costs a query of the printers it names: start afresh.
        print(f"<4>ignoring {path}: {err}", flush=True)
        return {}
    printers = data.get("printers") if isinstance(data, dict) else None
    if not isinstance(printers, dict):
        return {}
    return {
        k: v
        for k, v in printers.items()
        if isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
    }


def write_state(path: Path, state: Mapping[str, Mapping[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".tmp")
    with staged.open("w", encoding="utf-8") as file:
        json.dump({"printers": state}, file, indent=1, sort_keys=True)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    staged.replace(path)


def _settings(printer: Printer) -> list[str]:
    args = []
    if printer.location is not None:
        args += ["-L", printer.location]
    if printer.description is not None:
        args += ["-D", printer.description]
    for name, value in sorted(printer.ppd_options.items()):
        args += ["-o", f"{name}={value}"]
    return args


def is_kept(
    printer: Printer,
    queues: Mapping[str, tuple[str, str | None]],
    state: Mapping[str, Mapping[str, str]],
) -> bool:
    """A driverless queue cupsd keeps with this device URI and, as far as this program set it up,
    this model: asking the printer again could only lose it."""
    if printer.model != DRIVERLESS:
        return False
    queue = queues.get(printer.name.lower())
    if queue is None or queue[1] != printer.device_uri:
        return False
    recorded = state.get(printer.name.lower())
    return recorded is None or recorded.get("model") == printer.model


def lpadmin_args(printer: Printer, kept: bool) -> list[str]:
    """-E after -p: enable the queue and accept jobs (before -p it would mean encryption)."""
    if kept:
        return ["-p", printer.name, *_settings(printer), "-E"]
    return [
        "-p",
        printer.name,
        "-v",
        printer.device_uri,
        "-m",
        printer.model,
        *_settings(printer),
        "-E",
    ]


Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # the C locale: lpadmin's messages as in CUPS's source, for the journal
    env = dict(os.environ, LC_ALL="C")
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", check=False, env=env
        )
    except OSError as err:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: {err.strerror}")
    except ValueError:  # a NUL in a queue name printers.conf holds: no program can be given it
        return subprocess.CompletedProcess(list(argv), 127, "", "an argument holds a NUL")


@dataclass
class Outcome:
    failed: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def ensure(
    config: Config,
    queues: Mapping[str, tuple[str, str | None]],
    state: dict[str, dict[str, str]],
    lpadmin: str,
    run: Run = _run,
) -> Outcome:
    """Run lpadmin for every printer (each on its own), the default and the removals; update
    `state` with what was set up."""
    out = Outcome()

    def call(name: str, args: Sequence[str]) -> bool:
        result = run([lpadmin, *args])
        if result.returncode == 0:
            return True
        # one line: whatever lpadmin printed, its lines joined
        detail = " / ".join(
            line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()
        )
        detail = detail or f"exit status {result.returncode}"
        out.log.append(f"<4>printer {name}: could not be set up now: {detail}")
        out.failed.append(name)
        return False

    for printer in config.printers:
        kept = is_kept(printer, queues, state)
        if call(printer.name, lpadmin_args(printer, kept)):
            state[printer.name.lower()] = {
                "deviceUri": printer.device_uri,
                "model": printer.model,
            }
            if kept:
                out.log.append(
                    f"printer {printer.name}: kept as it is (same device, driverless: "
                    "not asking the printer again)"
                )
            else:
                out.log.append(f"printer {printer.name}: set up")
    if config.default is not None:
        call(config.default, ["-d", config.default])
    if config.remove_undeclared:
        declared = {p.name.lower() for p in config.printers}
        for key, (name, _) in sorted(queues.items()):
            if key not in declared:
                out.log.append(f"removing printer {name}: not declared")
                if call(name, ["-x", name]):
                    state.pop(key, None)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ensure-printers", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--config", type=Path, required=True, help="the declared printers (JSON)")
    parser.add_argument(
        "--printers-conf",
        type=Path,
        default=Path("/var/lib/cups/printers.conf"),
        help="cupsd's printers.conf (NixOS: /var/lib/cups)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=Path("/var/lib/kvmfleet-printing/state.json"),
        help="where this program records the device and model it set up",
    )
    parser.add_argument("--lpadmin", default="lpadmin", help="the lpadmin program")
    args = parser.parse_args(argv)
    try:
        config = parse_config(json.loads(args.config.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError, ConfigError) as err:
        print(f"ensure-printers: {args.config}: {err}", file=sys.stderr)
        return 2
    try:
        queues = read_queues(args.printers_conf)
    except CupsFileError as err:
        print(f"ensure-printers: {err}", file=sys.stderr)
        return 1
    state = read_state(args.state)
    outcome = ensure(config, queues, state, args.lpadmin, _run)
    for line in outcome.log:
        print(line, flush=True)
    try:
        write_state(args.state, state)
    except OSError as err:
        print(f"<4>ensure-printers: cannot write {args.state}: {err}", flush=True)
    if outcome.failed:
        print(f"not set up now: {' '.join(outcome.failed)}", flush=True)
        return EX_TEMPFAIL
    return 0


if __name__ == "__main__":
    sys.exit(main())
