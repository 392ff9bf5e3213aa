"""Log in to iSCSI targets through open-iscsi ifaces bound to network interfaces, idempotently.

`iscsi-ifaces --config FILE start` makes the open-iscsi database and the kernel's sessions match the
configuration, changing only what differs, so running it again changes nothing:
  1. every iface exists and is bound to its interface (`iface.net_ifacename`);
  2. every target's discovery record exists with the wanted authentication; discovery runs once per
     iface (`-o new`: records that already exist keep their settings, and a NIC that is down does
     not hide the targets the other one sees);
  3. every discovered node record has the wanted session settings (a short
     `node.session.timeo.replacement_timeout` for multipath, CHAP);
  4. every node record without a session is logged in;
  5. every live session gets the wanted `replacement_timeout` in the kernel too (sysfs
     `recovery_tmo`): open-iscsi applies the node record's value only when it logs in.
`start` succeeds once every target has at least one session: a host on one of two paths is
degraded, not down. Each missing path is logged (`path missing: ...`) and written, one per line,
to STATE_DIR/missing; `retry` then logs in the missing paths every INTERVAL seconds until none is
left (its unit status says which are still missing). `start` fails only when a target has no
session at all (nothing reachable yet: its unit restarts it).
`stop` logs out the sessions that run over the configured ifaces (at shutdown, before the network
goes down). CHAP credentials are read at run time from a file (`username = …`, `password = …`, and
for mutual CHAP `username_in`/`password_in`) that is never copied into the Nix store.

The configuration is JSON: {"ifaces": {NAME: {"interface": DEV}}, "targets": [{"portal": "ADDR:PORT",
"ifaces": [NAME, ...], "target": IQN or null, "chapSecretFile": PATH or null}],
"nodeSettings": {KEY: VALUE}, "discoverySettings": {KEY: VALUE}}.

Exit status: 0 when every target has a session (start: missing paths are listed and retried, see
above), every missing path is back (retry) or every session logged out (stop); 1 when a target has
no session at all or a session could not be logged out (each problem is reported in one line,
naming the target or the CHAP file, and the other targets are still set up); 2 when the
configuration file is unreadable or invalid (one line naming it, nothing done).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# iscsiadm exit codes (open-iscsi include/iscsi_err.h)
SESSION_EXISTS = 15
NO_OBJECTS_FOUND = 21
# A logout of a session that vanished meanwhile (its sysfs entry is gone): seen with Debian's
# open-iscsi 2.1.8 and with the pinned 2.1.11 built from its source.
SYSFS_LOOKUP = 22

REPLACEMENT_TIMEOUT = "node.session.timeo.replacement_timeout"
SESSIONS_SYSFS = Path("/sys/class/iscsi_session")
STATE_DIR = Path("/run/iscsi-ifaces")

CHAP_KEYS = ("username", "password", "username_in", "password_in")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Runner = Callable[[Sequence[str]], Result]


class ConfigError(Exception):
    """The configuration or a CHAP secret file is unusable."""


@dataclass(frozen=True)
class Target:
    portal: str
    ifaces: tuple[str, ...]
    target: str | None = None
    chap_secret_file: str | None = None


@dataclass(frozen=True)
class Config:
    ifaces: Mapping[str, str]  # iface name -> network interface
    targets: tuple[Target, ...]
    node_settings: Mapping[str, str] = field(default_factory=dict)
    discovery_settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class Node:
    """One node record: a target reached at a portal through an iface."""

    target: str
    portal: str
    iface: str


@dataclass(frozen=True)
class Session:
    sid: str
    node: Node


def load_config(text: str) -> Config:
    try:
        raw = json.loads(text)
        ifaces = {str(name): str(spec["interface"]) for name, spec in raw.get("ifaces", {}).items()}
        targets = tuple(
            Target(
                portal=str(t["portal"]),
                ifaces=tuple(str(i) for i in t.get("ifaces", [])),
                target=None if t.get("target") is None else str(t["target"]),
                chap_secret_file=(
                    None if t.get("chapSecretFile") is None else str(t["chapSecretFile"])
                ),
            )
            for t in raw.get("targets", [])
        )
        settings = {str(k): _setting(v) for k, v in raw.get("nodeSettings", {}).items()}
        discovery = {str(k): _setting(v) for k, v in raw.get("discoverySettings", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise ConfigError(f"invalid configuration: {e!r}") from e
    for t in targets:
        for name in t.ifaces:
            if name not in ifaces:
                raise ConfigError(f"target {t.portal} uses iface {name!r}, which is not configured")
    return Config(ifaces, targets, settings, discovery)


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"setting value {value!r} is not a string or an integer")


def read_chap(path: str) -> dict[str, str]:
    """`key = value` lines; `#` comments and blank lines are ignored."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # an editor's BOM is no key
    except OSError as e:
        raise ConfigError(f"cannot read CHAP secret file {path}: {e.strerror}") from e
    except UnicodeDecodeError:
        # never echo the bytes: they may be the secret
        raise ConfigError(f"CHAP secret file {path} is not UTF-8 text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in CHAP_KEYS or not value:
            # never echo the line: it may hold a secret
            raise ConfigError(
                f"{path}:{number}: expected one of {', '.join(CHAP_KEYS)} as 'key = value'"
            )
        values[key] = value
    for required in ("username", "password"):
        if required not in values:
            raise ConfigError(f"{path}: no {required}")
    if ("username_in" in values) != ("password_in" in values):
        raise ConfigError(f"{path}: mutual CHAP needs both username_in and password_in")
    return values


def auth_settings(prefix: str, chap: Mapping[str, str] | None) -> dict[str, str]:
    """Wanted `<prefix>.auth.*` values: CHAP with the file's credentials, or none at all."""
    if chap is None:
        return {f"{prefix}.auth.authmethod": "None"}
    wanted = {f"{prefix}.auth.authmethod": "CHAP"}
    for key in CHAP_KEYS:
        # an absent value is cleared: a mutual CHAP removed from the file is removed here too
        wanted[f"{prefix}.auth.{key}"] = chap.get(key, "")
    return wanted


EMPTY = "<empty>"  # how iscsiadm shows an empty value; `-v <empty>` would store those 7 characters


def parse_settings(text: str) -> dict[str, str]:
    """`iscsiadm -m node|discoverydb` record output: `# comments` and `key = value` lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, _, value = line.partition(" = ")
        value = value.strip()
        values[key.strip()] = "" if value == EMPTY else value
    return values


def parse_discovery(text: str, iface: str) -> list[Node]:
    """Flat discovery output, one `ADDR:PORT,TPGT TARGET` line per record."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or "," not in parts[0]:
            continue
        portal = parts[0].rsplit(",", 1)[0]
        nodes.append(Node(parts[1], portal, iface))
    return nodes


def parse_sessions(text: str) -> list[Session]:
    """`iscsiadm -m session -P 1`. A session to the same target and portal as the previous one
    gets no portal lines of its own, so target and portal carry over from the lines before."""
    sessions = []
    target = portal = iface = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Target: "):
            target = line.removeprefix("Target: ").split(" (")[0]
        elif line.startswith("Persistent Portal: "):
            portal = line.removeprefix("Persistent Portal: ").rsplit(",", 1)[0]
        elif line.startswith("Iface Name: "):
            iface = line.removeprefix("Iface Name: ")
        elif line.startswith("SID: "):
            sessions.append(Session(line.removeprefix("SID: "), Node(target, portal, iface)))
    return sessions


class Iscsiadm:
    def __init__(self, run: Runner, log: Callable[[str], None]) -> None:
        self.run = run
        self.log = log

    def __call__(self, *args: str, ok: tuple[int, ...] | None = (0,)) -> Result:
        """Run iscsiadm; an exit code not in `ok` raises (None: any code is fine)."""
        result = self.run(["iscsiadm", *args])
        if ok is not None and result.code not in ok:
            raise IscsiadmError(args, result)
        return result

    def update(
        self, selector: Sequence[str], current: Mapping[str, str], wanted: Mapping[str, str]
    ) -> list[str]:
        """Set each wanted value that differs; returns the keys changed."""
        changed = []
        for key, value in wanted.items():
            if current.get(key) != value:
                self(*selector, "-o", "update", "-n", key, "-v", value)
                changed.append(key)
        return changed


class IscsiadmError(Exception):
    def __init__(self, args: Sequence[str], result: Result) -> None:
        shown = " ".join(_redact(args))
        message = result.err.strip() or result.out.strip()
        super().__init__(f"iscsiadm {shown} failed (exit {result.code}): {message}")


def _redact(args: Sequence[str]) -> Iterator[str]:
    """The arguments for a message, with the value after `-n ….password -v` hidden."""
    secret_key = hide = False
    for arg in args:
        yield "********" if hide else arg
        hide = secret_key and arg == "-v"
        secret_key = arg.endswith((".password", ".password_in")) or (secret_key and not hide)


def node_selector(node: Node) -> list[str]:
    return ["-m", "node", "-T", node.target, "-p", node.portal, "-I", node.iface]


def parse_ifaces(text: str) -> dict[str, str]:
    """`iscsiadm -m iface`: `NAME TRANSPORT,HWADDRESS,IPADDRESS,NETDEV,INITIATORNAME` lines."""
    ifaces = {}
    for line in text.splitlines():
        name, _, fields = line.strip().partition(" ")
        values = fields.split(",")
        if name and len(values) >= 4:
            ifaces[name] = "" if values[3] == EMPTY else values[3]
    return ifaces


def ensure_ifaces(adm: Iscsiadm, config: Config) -> None:
    # The list always holds open-iscsi's built-in ifaces (default, iser, ...).
    existing = parse_ifaces(adm("-m", "iface").out)
    for name, interface in sorted(config.ifaces.items()):
        if name not in existing:
            adm("-m", "iface", "-I", name, "-o", "new")
            adm.log(f"created iface {name}")
        if existing.get(name) != interface:
            adm(
                "-m",
                "iface",
                "-I",
                name,
                "-o",
                "update",
                "-n",
                "iface.net_ifacename",
                "-v",
                interface,
            )
            adm.log(f"bound iface {name} to {interface}")


def discover(
    adm: Iscsiadm,
    target: Target,
    chap: Mapping[str, str] | None,
    settings: Mapping[str, str] | None = None,
) -> list[Node]:
    """Discovery through each of the target's ifaces; a failing iface is logged and skipped.
    `settings` (the record's timeouts) bound how long a dead path delays the run."""
    selector = ["-m", "discoverydb", "-t", "sendtargets", "-p", target.portal]
    shown = adm(*selector, "-S", ok=None)
    if shown.code != 0:  # no such record (the exit code varies with the reason)
        adm(*selector, "-o", "new")
        adm.log(f"created discovery record {target.portal}")
        shown = adm(*selector, "-S")
    changed = adm.update(
        selector,
        parse_settings(shown.out),
        dict(settings or {}) | auth_settings("discovery.sendtargets", chap),
    )
    if changed:
        adm.log(f"set {', '.join(_shown_keys(changed))} of discovery record {target.portal}")
    nodes: list[Node] = []
    for iface in target.ifaces:
        try:
            found = adm(*selector, "-I", iface, "--discover", "-o", "new")
        except IscsiadmError as e:
            adm.log(f"discovery through {iface} failed: {e}")
            continue
        nodes.extend(n for n in parse_discovery(found.out, iface) if _wanted(target, n))
    return nodes


def _wanted(target: Target, node: Node) -> bool:
    return target.target is None or target.target.lower() == node.target.lower()


def sessions(adm: Iscsiadm) -> list[Session]:
    result = adm("-m", "session", "-P", "1", ok=(0, NO_OBJECTS_FOUND))
    return parse_sessions(result.out) if result.code == 0 else []


@dataclass(frozen=True)
class Outcome:
    """What a `start` left undone: paths without a session, and targets without any."""

    missing: tuple[str, ...] = ()
    unserved: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every target has a session (some paths may be missing: degraded, not down)."""
        return not self.unserved


def start(adm: Iscsiadm, config: Config, sysfs: Path | None = SESSIONS_SYSFS) -> Outcome:
    ensure_ifaces(adm, config)
    live = {s.node for s in sessions(adm)}
    missing: list[str] = []
    unserved: list[str] = []
    for target in config.targets:
        wanted_name = target.target or "any target"
        try:
            chap = read_chap(target.chap_secret_file) if target.chap_secret_file else None
            nodes = discover(adm, target, chap, config.discovery_settings)
        except (ConfigError, IscsiadmError) as e:
            adm.log(str(e))
            unserved.append(f"{wanted_name} at {target.portal}")
            missing.extend(
                f"{wanted_name} at {target.portal} through {_via(config, i)}" for i in target.ifaces
            )
            continue
        reached = {n.iface for n in nodes}
        for iface in target.ifaces:
            if iface not in reached:
                missing.append(f"{wanted_name} at {target.portal} through {_via(config, iface)}")
        wanted = dict(config.node_settings) | auth_settings("node.session", chap)
        for node in sorted(set(nodes)):
            try:
                shown = adm(*node_selector(node), "-S")
                changed = adm.update(node_selector(node), parse_settings(shown.out), wanted)
                if changed:
                    adm.log(f"set {', '.join(_shown_keys(changed))} on {_describe(node)}")
                if node not in live:
                    adm(*node_selector(node), "--login", ok=(0, SESSION_EXISTS))
                    adm.log(f"logged in to {_describe(node)}")
                    live.add(node)
            except IscsiadmError as e:
                adm.log(str(e))
                missing.append(_describe(node, config))
        # a target counts as served once one of its paths has a session
        names = {n.target.lower() for n in nodes}
        served = {n.target.lower() for n in live if n.iface in target.ifaces}
        if not names and not any(
            n.portal == target.portal and n.iface in target.ifaces and _wanted(target, n)
            for n in live
        ):
            # nothing discovered and no session left from before (a reload while the portal
            # does not answer keeps the sessions it has: degraded, not down)
            unserved.append(f"{wanted_name} at {target.portal}")
        unserved.extend(f"{name} at {target.portal}" for name in sorted(names - served))
    for line in missing:
        adm.log(f"path missing: {line}")
    if sysfs is not None and REPLACEMENT_TIMEOUT in config.node_settings:
        apply_live_timeout(adm, config, sysfs)
    return Outcome(tuple(missing), tuple(unserved))


def apply_live_timeout(adm: Iscsiadm, config: Config, sysfs: Path) -> None:
    """open-iscsi sets a session's recovery_tmo from the node record at login only: write the
    wanted value to the live sessions of the configured ifaces. (iscsid sets its login-time value
    again when it reconnects a session after a path failure: the next run corrects it.)"""
    wanted = config.node_settings[REPLACEMENT_TIMEOUT]
    for session in sessions(adm):
        if session.node.iface not in config.ifaces:
            continue
        attribute = sysfs / f"session{session.sid}" / "recovery_tmo"
        try:
            if attribute.read_text().strip() == wanted:
                continue
            attribute.write_text(wanted)
            adm.log(
                f"set recovery_tmo {wanted} on live session {session.sid} ({_describe(session.node)})"
            )
        except OSError as e:
            # EBUSY while the session is failed (recovering): the next run sets it
            adm.log(f"cannot set recovery_tmo of session {session.sid}: {e.strerror}")


def stop(adm: Iscsiadm, config: Config) -> int:
    failures = 0
    for session in sessions(adm):
        if session.node.iface not in config.ifaces:
            continue
        try:
            result = adm(
                "-m",
                "session",
                "-r",
                session.sid,
                "--logout",
                ok=(0, NO_OBJECTS_FOUND, SYSFS_LOOKUP),
            )
            if result.code == 0:
                adm.log(f"logged out of {_describe(session.node)}")
        except IscsiadmError as e:
            adm.log(str(e))
            failures += 1
    return failures


def _via(config: Config, iface: str) -> str:
    return f"{iface} ({config.ifaces.get(iface, '?')})"


def _shown_keys(keys: Sequence[str]) -> list[str]:
    """Changed keys for a message: CHAP values are named only as a group."""
    shown = [k for k in keys if ".auth." not in k]
    return shown + (["authentication"] if len(shown) < len(keys) else [])


def _describe(node: Node, config: Config | None = None) -> str:
    via = _via(config, node.iface) if config is not None else node.iface
    return f"{node.target} at {node.portal} through {via}"


def write_missing(state_dir: Path, outcome: Outcome) -> None:
    """STATE_DIR/missing lists the missing paths, one per line; absent when none is missing."""
    path = state_dir / "missing"
    if not outcome.missing:
        path.unlink(missing_ok=True)
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".new")
    staged.write_text("".join(f"{line}\n" for line in outcome.missing))
    staged.replace(path)


def notify(message: str) -> None:
    """sd_notify(3) without libsystemd: a datagram to $NOTIFY_SOCKET, if systemd gave one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    # status reporting is best effort
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(message.encode(), address)


def retry(
    adm: Iscsiadm,
    config: Config,
    state_dir: Path,
    interval: float,
    sysfs: Path | None = SESSIONS_SYSFS,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> int:
    """While STATE_DIR/missing lists paths, run `start` every `interval` seconds; returns the
    number of paths still missing (0: all back) after `rounds` rounds (None: until none is)."""
    path = state_dir / "missing"
    done = 0
    while path.exists():
        waiting = path.read_text().splitlines()
        notify(f"STATUS=missing {len(waiting)} path(s): {'; '.join(waiting)}")
        if rounds is not None and done >= rounds:
            return len(waiting)
        sleep(interval)
        outcome = start(adm, config, sysfs)
        write_missing(state_dir, outcome)
        done += 1
    adm.log("every path has a session")
    notify("STATUS=every path has a session")
    return 0


def run_process(args: Sequence[str]) -> Result:
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, errors="replace", check=False
        )
    except (OSError, ValueError) as e:  # no iscsiadm, or a NUL byte in an argument
        return Result(127, "", f"cannot run {args[0]}: {e}")
    return Result(done.returncode, done.stdout, done.stderr)


def main(argv: Sequence[str] | None = None, run: Runner = run_process) -> int:
    parser = argparse.ArgumentParser(prog="iscsi-ifaces", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="JSON configuration file")
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="where the missing paths are listed"
    )
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between two retries (retry)"
    )
    parser.add_argument(
        "--sessions-sysfs",
        type=Path,
        default=SESSIONS_SYSFS,
        help="the kernel's iSCSI sessions (for their live recovery_tmo)",
    )
    parser.add_argument("action", choices=("start", "retry", "stop"))
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config.read_bytes().decode("utf-8"))
    except OSError as e:
        print(f"iscsi-ifaces: cannot read {args.config}: {e.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"iscsi-ifaces: {args.config}: not UTF-8 text", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"iscsi-ifaces: {args.config}: {e}", file=sys.stderr)
        return 2
    adm = Iscsiadm(run, lambda message: print(f"iscsi-ifaces: {message}", flush=True))
    try:
        if args.action == "stop":
            failures = stop(adm, config)
            write_missing(args.state_dir, Outcome())  # nothing to retry once logged out
            return 1 if failures else 0
        if args.action == "retry":
            left = retry(adm, config, args.state_dir, args.interval, args.sessions_sysfs)
            return 1 if left else 0
        outcome = start(adm, config, args.sessions_sysfs)
        write_missing(args.state_dir, outcome)
    except IscsiadmError as e:
        print(f"iscsi-ifaces: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"iscsi-ifaces: {args.state_dir}: {e.strerror}", file=sys.stderr)
        return 1
    for line in outcome.unserved:
        print(f"iscsi-ifaces: no session to {line}", file=sys.stderr)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
