"""A fake `iscsiadm` for the iscsi-ifaces tests: keeps ifaces, discovery and node records and
sessions like open-iscsi does, prints them in iscsiadm's formats (including `session -P 1`'s habit
of omitting the portal lines of a session to the same target and portal as the one before), and
records every call. Usable in-process (`FakeIscsiadm.run`) or as an executable (`main`), with its
state in a JSON file.

What it answers was checked against the real program (tests/test_iscsi_real.py runs the same
calls against Debian 12's open-iscsi 2.1.8, and was run here against the pinned 2.1.11 too):
`-m iface -o new` on an existing iface succeeds and resets the iface to its defaults (its
`iface.net_ifacename` is lost; 2.1.11 usr/iscsiadm.c iface OP_NEW: iface_setup_defaults, then
iface_conf_write) and fails with 15 only while a session runs on it; the logout of a session that
vanished meanwhile exits 22 (ISCSI_ERR_SYSFS_LOOKUP), a session listing without sessions 21,
a missing discovery record 6, a missing node record 21. With a `sysfs` directory it keeps each
session's `recovery_tmo` as the kernel does: set from the node record at login only."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_IFACES = ("default", "iser")
EMPTY = "<empty>"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


DISCOVERY_DEFAULTS = {
    "discovery.sendtargets.timeo.login_timeout": "15",
    "discovery.sendtargets.reopen_max": "5",
}
NODE_DEFAULTS = {
    "node.startup": "manual",
    "node.session.initial_login_retry_max": "8",
    "node.session.timeo.replacement_timeout": "120",
    "node.conn[0].timeo.login_timeout": "15",
}


def _auth(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}.auth.authmethod": "None",
        **{
            f"{prefix}.auth.{k}": "" for k in ("username", "password", "username_in", "password_in")
        },
    }


@dataclass
class FakeIscsiadm:
    # what the SAN offers: discovery portal -> [(target, target portal)]
    offers: dict[str, list[list[str]]] = field(default_factory=dict)
    # CHAP credentials the SAN demands, if any (username, password)
    chap: list[str] | None = None
    # network interfaces without a link: discovery and login through them fail
    down: list[str] = field(default_factory=list)
    ifaces: dict[str, str] = field(default_factory=dict)
    discovery: dict[str, dict[str, str]] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # "target|portal|iface"
    sessions: list[list[str]] = field(default_factory=list)  # [sid, target, portal, iface]
    next_sid: int = 1
    calls: list[list[str]] = field(default_factory=list)
    # /sys/class/iscsi_session as a directory, if the test looks at live session settings
    sysfs: str | None = None

    # --- the command line -------------------------------------------------------------------
    def run(self, argv: Sequence[str]) -> Result:
        assert argv[0] == "iscsiadm", argv
        args = list(argv[1:])
        self.calls.append(args)
        opts: dict[str, Any] = {"I": []}
        flags = set()
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("--login", "--logout", "--discover", "-S"):
                flags.add(arg)
                i += 1
                continue
            key = arg.lstrip("-")
            value = args[i + 1]
            if key == "I":
                opts["I"].append(value)
            else:
                assert key in ("m", "T", "p", "t", "o", "n", "v", "P", "r"), arg
                opts[key] = value
            i += 2
        mode = opts["m"]
        handler = getattr(self, f"_{mode}")
        result: Result = handler(opts, flags)
        return result

    # --- modes ------------------------------------------------------------------------------
    def _iface(self, opts: dict[str, Any], flags: set[str]) -> Result:
        op = opts.get("o")
        if not opts["I"]:
            names = [*BUILTIN_IFACES, *sorted(self.ifaces)]
            lines = [
                f"{n} tcp,{EMPTY},{EMPTY},{self.ifaces.get(n) or EMPTY},{EMPTY}" for n in names
            ]
            return Result(0, "".join(f"{line}\n" for line in lines), "")
        (name,) = opts["I"]
        if op == "new":
            if any(s[3] == name for s in self.sessions):
                return Result(15, "", f"iscsiadm: Could not create new interface {name}.\n")
            self.ifaces[name] = ""  # an existing iface is reset to its defaults
            return Result(0, f"New interface {name} added\n", "")
        if op == "update":
            if name not in self.ifaces:
                return Result(7, "", f"iscsiadm: Could not read iface {name}.\n")
            assert opts["n"] == "iface.net_ifacename", opts
            self.ifaces[name] = opts["v"]
            return Result(0, f"{name} updated.\n", "")
        raise AssertionError(f"unexpected iface call {opts}")

    def _discoverydb(self, opts: dict[str, Any], flags: set[str]) -> Result:
        assert opts["t"] == "sendtargets", opts
        portal = opts["p"]
        record = self.discovery.get(portal)
        op = opts.get("o")
        if "--discover" in flags:
            assert op == "new", "discovery must not overwrite existing node records"
            return self._discover(portal, opts["I"])
        if op == "new":
            self.discovery[portal] = {**DISCOVERY_DEFAULTS, **_auth("discovery.sendtargets")}
            return Result(0, f"New discovery record for [{portal}] added.\n", "")
        if record is None:
            return Result(6, "", f"iscsiadm: Discovery record [{portal}] not found.\n")
        if op == "update":
            assert opts["n"] in record, opts
            assert opts["v"] != EMPTY, "iscsiadm would store the text <empty>"
            record[opts["n"]] = opts["v"]
            return Result(0, "", "")
        assert op is None, opts
        return Result(0, _record(record, "-S" in flags), "")

    def _discover(self, portal: str, ifaces: list[str]) -> Result:
        (iface,) = ifaces  # the program discovers through one iface at a time
        if self.ifaces.get(iface) in self.down:
            return Result(4, "", "iscsiadm: cannot make connection to ...: No route to host\n")
        if self.chap is not None:
            record = self.discovery[portal]
            if [
                record["discovery.sendtargets.auth.username"],
                record["discovery.sendtargets.auth.password"],
            ] != self.chap:
                return Result(24, "", "iscsiadm: Login failed to authorize with target\n")
        lines = []
        for target, target_portal in self.offers.get(portal, []):
            key = f"{target}|{target_portal}|{iface}"
            if key not in self.nodes:
                self.nodes[key] = {"node.name": target, **NODE_DEFAULTS, **_auth("node.session")}
            lines.append(f"{target_portal},1 {target}\n")
        return Result(0, "".join(lines), "")

    def _node(self, opts: dict[str, Any], flags: set[str]) -> Result:
        (iface,) = opts["I"]
        key = f"{opts['T']}|{opts['p']}|{iface}"
        record = self.nodes.get(key)
        if record is None:
            return Result(21, "", "iscsiadm: No records found\n")
        op = opts.get("o")
        if op == "update":
            assert opts["n"] in record or opts["n"].startswith("node."), opts
            assert opts["v"] != EMPTY, "iscsiadm would store the text <empty>"
            record[opts["n"]] = opts["v"]
            return Result(0, "", "")
        where = f"[iface: {iface}, target: {opts['T']}, portal: {opts['p']}]"
        if "--login" in flags:
            if any(s[1:] == [opts["T"], opts["p"], iface] for s in self.sessions):
                return Result(
                    15, "", "iscsiadm: default: 1 session requested, but 1 already present.\n"
                )
            if self.ifaces.get(iface) in self.down:
                return Result(
                    8, f"Logging in to {where}\n", f"iscsiadm: Could not login to {where}.\n"
                )
            if (
                self.chap is not None
                and [
                    record["node.session.auth.username"],
                    record["node.session.auth.password"],
                ]
                != self.chap
            ):
                return Result(24, "", "iscsiadm: Login failed to authorize with target\n")
            sid = str(self.next_sid)
            self.sessions.append([sid, opts["T"], opts["p"], iface])
            self.next_sid += 1
            if self.sysfs is not None:
                session = Path(self.sysfs) / f"session{sid}"
                session.mkdir(parents=True)
                tmo = record["node.session.timeo.replacement_timeout"]
                (session / "recovery_tmo").write_text(f"{tmo}\n")
            return Result(0, f"Logging in to {where}\nLogin to {where} successful.\n", "")
        assert op is None and not flags - {"-S"}, opts
        return Result(0, _record(record, "-S" in flags), "")

    def _session(self, opts: dict[str, Any], flags: set[str]) -> Result:
        if "--logout" in flags:
            sid = opts["r"]
            kept = [s for s in self.sessions if s[0] != sid]
            if len(kept) == len(self.sessions):
                return Result(
                    22,
                    "",
                    "iscsiadm: could not read session targetname: 5\n"
                    f"iscsiadm: Could not get session info for sid {sid}\n",
                )
            self.sessions = kept
            if self.sysfs is not None:
                shutil.rmtree(Path(self.sysfs) / f"session{sid}", ignore_errors=True)
            return Result(0, "Logout successful.\n", "")
        assert opts.get("P") == "1", opts
        if not self.sessions:
            return Result(21, "", "iscsiadm: No active sessions.\n")
        out = []
        previous: list[str] | None = None
        for sid, target, portal, iface in sorted(self.sessions, key=lambda s: (s[1], s[2], s[0])):
            if previous is None or previous[1] != target:
                out.append(f"Target: {target} (non-flash)\n")
                previous = None
            if previous is not None and previous[2] == portal:
                out.append("\n")
            else:
                out.append(f"\tCurrent Portal: {portal},1\n\tPersistent Portal: {portal},1\n")
            out.append(
                "\t\t**********\n\t\tInterface:\n\t\t**********\n"
                f"\t\tIface Name: {iface}\n\t\tIface Transport: tcp\n"
                f"\t\tIface Netdev: {self.ifaces.get(iface) or EMPTY}\n"
                f"\t\tSID: {sid}\n"
                "\t\tiSCSI Connection State: LOGGED IN\n"
            )
            previous = [sid, target, portal, iface]
        return Result(0, "".join(out), "")

    # --- state as JSON ----------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FakeIscsiadm:
        return cls(**json.loads(text))


def _record(values: dict[str, str], show: bool) -> str:
    lines = ["# BEGIN RECORD 2.1.11"]
    for key, value in values.items():
        # as idbm.c prints a record: masked secrets, "<empty>" for empty values
        hidden = key.endswith((".password", ".password_in")) and value and not show
        lines.append(f"{key} = {'********' if hidden else value or EMPTY}")
    lines.append("# END RECORD")
    return "".join(f"{line}\n" for line in lines)


def main(state_file: Path) -> int:
    fake = FakeIscsiadm.from_json(state_file.read_text())
    result = fake.run(["iscsiadm", *sys.argv[1:]])
    state_file.write_text(fake.to_json())
    sys.stdout.write(result.out)
    sys.stderr.write(result.err)
    return result.code
