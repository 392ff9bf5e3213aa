"""iscsi-ifaces (pkgs/iscsi-ifaces) against the real open-iscsi and a real target, in network
namespaces this test makes: a target namespace with tgtd (Debian's `tgt`) on a bridge carrying the
portal 192.0.2.100 (TEST-NET-1), and an initiator namespace with two veth links into that bridge,
san0 (192.0.2.11) and san1 (192.0.2.12), in one subnet: two paths to one portal, as a host reaches
an EqualLogic group. Nothing leaves the namespaces; open-iscsi's database is the test's own
directory, bind-mounted over /etc/iscsi in each iscsiadm's private mount namespace.

Two parts:
- Records (every machine with the programs, root and `ip netns`): iface creation and binding,
  discovery and node records, the settings kvmfleet writes (every key must be one iscsiadm
  accepts), and the answers the fake in tests/fake_iscsiadm.py must give (an iface created again,
  a vanished session's logout, empty listings, missing records). Sessions need the kernel: iscsid
  refuses to start without NETLINK_ISCSI (scsi_transport_iscsi), and SendTargets discovery asks
  iscsid for the initiator name. Where the kernel has no iSCSI transport (this development
  machine: a Firecracker kernel without modules), iscsiadm's transport lookup, which reads only
  /sys/class/iscsi_transport/tcp/{handle,caps}, is given that entry in the test's own mount
  namespace, so that iface updates run; nothing else is stood in for.
- Sessions (a kernel with iSCSI over TCP, i.e. `iscsi_tcp`): binding, discovery through each
  iface, login, an idempotent second run, one link down (the start succeeds degraded within its
  bound and names the missing path; the retry brings it back when the link returns), the live
  recovery_tmo, logout. Skipped, with the reason, where the kernel lacks iSCSI: NOT RUN on the
  machine this was written on; what was run there is the records part.

Versions: Debian 12's open-iscsi 2.1.8 and tgt 1.0.85 showed what the records part asserts, and
so did the pinned open-iscsi 2.1.11 built from its source as nixpkgs builds it (meson,
-Ddbroot=/etc/iscsi; -Disns=disabled) and given as KVMFLEET_ISCSIADM=<build>/iscsiadm.
Skipped without the programs, root or namespaces, except under CI, where that is a failure
(.ci/run installs open-iscsi and tgt).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import host_program
from fake_iscsiadm import DISCOVERY_DEFAULTS, NODE_DEFAULTS, FakeIscsiadm

prog = host_program("iscsi-ifaces")

PORTAL = "192.0.2.100:3260"
TARGET = "iqn.2026-12.net.example.test:kvmfleet-lun"
INITIATOR = "iqn.2026-12.net.example.test:initiator"
ADDRESSES = {"san0": "192.0.2.11/24", "san1": "192.0.2.12/24"}
IFACES = {"ieth0": "san0", "ieth1": "san1"}
NETLINK_ISCSI = 8  # include/uapi/linux/netlink.h
# what modules/iscsi-ifaces.nix writes by default
NODE_SETTINGS = {
    "node.session.timeo.replacement_timeout": 15,
    "node.conn[0].timeo.login_timeout": 15,
    "node.session.initial_login_retry_max": 2,
}
DISCOVERY_SETTINGS = {
    "discovery.sendtargets.timeo.login_timeout": 15,
    "discovery.sendtargets.reopen_max": 1,
}
PROGRAMS = ("iscsiadm", "iscsid", "tgtd", "tgtadm", "ip", "mount")


def _missing_requirements() -> str | None:
    absent = [p for p in PROGRAMS if shutil.which(p) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (Debian: open-iscsi, tgt, iproute2)"
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    return None


def _require() -> None:
    reason = _missing_requirements()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: .ci/run installs open-iscsi and tgt")
    pytest.skip(reason)


def kernel_has_iscsi(netns: str) -> bool:
    """What iscsid needs first (usr/netlink.c): a NETLINK_ISCSI socket, in the initiator's
    namespace (older kernels offer it in the initial one only), and the TCP transport."""
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "iscsi_tcp"], check=False, capture_output=True)
    probe = (
        f"import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, {NETLINK_ISCSI}).close()"
    )
    opened = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", probe],
        capture_output=True,
        check=False,
    )
    return opened.returncode == 0 and Path("/sys/class/iscsi_transport/tcp").exists()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)


@dataclass
class San:
    """The namespaces, the target and the initiator's open-iscsi directory."""

    target_ns: str
    host_ns: str
    root: Path  # etc/ (bound over /etc/iscsi), lock/, bin/iscsiadm, ...
    shim: bool  # iscsiadm's transport lookup is given /sys/class/iscsi_transport/tcp

    @property
    def iscsiadm(self) -> Path:
        return self.root / "bin" / "iscsiadm"

    def adm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(str(self.iscsiadm), *args, check=False)

    def runner(self, calls: list[list[str]]) -> Any:
        """A Runner for the program that runs the real iscsiadm (through the wrapper)."""

        def run(argv: Any) -> Any:
            calls.append(list(argv[1:]))
            done = self.adm(*argv[1:])
            return prog.Result(done.returncode, done.stdout, done.stderr)

        return run

    def link(self, nic: str, state: str) -> None:
        sh("ip", "-n", self.host_ns, "link", "set", nic, state)


NS_SCRIPT = """\
set -e
mount --bind "$ROOT/etc" /etc/iscsi
mount --bind "$ROOT/lock" /run/lock
if [ "$SHIM" = 1 ]; then
  # the kernel has no iSCSI transport: give iscsiadm's lookup the entry it reads
  mount -t tmpfs tmpfs "$ROOT/class"
  for d in /sys/class/*; do
    mkdir "$ROOT/class/${d##*/}"
    mount --bind "$d" "$ROOT/class/${d##*/}"
  done
  mkdir -p "$ROOT/class/iscsi_transport/tcp"
  echo 1 > "$ROOT/class/iscsi_transport/tcp/handle"
  echo 0x39 > "$ROOT/class/iscsi_transport/tcp/caps"
  mount --bind "$ROOT/class" /sys/class
fi
exec "$@"
"""


_made = itertools.count()


@pytest.fixture
def san(tmp_path: Path) -> Iterator[San]:
    _require()
    index = next(_made)
    tag = f"kvf{os.getpid() % 100000}x{index}"
    target_ns, host_ns = f"{tag}t", f"{tag}h"
    made: list[str] = []
    tgtd: subprocess.Popen[str] | None = None
    # tgtd's control socket is a file (/var/run/tgtd/socket.PORT), shared by all namespaces:
    # a port of the test's own
    # (tgtd accepts small numbers only: 57420 is "out of range" for tgt 1.0.85)
    port = str(100 + os.getpid() % 2000 * 10 + index % 10)
    root = tmp_path / "iscsi"
    try:
        for ns in (target_ns, host_ns):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "-n", target_ns, "link", "add", "br0", "type", "bridge")
        for n, nic in enumerate(("san0", "san1")):
            sh("ip", "link", "add", nic, "netns", host_ns, "type", "veth", "peer", "name",
               f"lan{n}", "netns", target_ns)  # fmt: skip
            sh("ip", "-n", target_ns, "link", "set", f"lan{n}", "master", "br0", "up")
            sh("ip", "-n", host_ns, "addr", "add", ADDRESSES[nic], "dev", nic)
            sh("ip", "-n", host_ns, "link", "set", nic, "up")
        sh("ip", "-n", target_ns, "addr", "add", "192.0.2.100/24", "dev", "br0")
        for ns, links in ((target_ns, ("br0", "lo")), (host_ns, ("lo",))):
            for link in links:
                sh("ip", "-n", ns, "link", "set", link, "up")
        # only the address each NIC owns answers ARP on it (what kvmfleet sets for one subnet)
        for key in ("arp_ignore", "arp_announce"):
            value = "1" if key == "arp_ignore" else "2"
            sh(
                "ip",
                "netns",
                "exec",
                host_ns,
                "sysctl",
                "-q",
                "-w",
                f"net.ipv4.conf.all.{key}={value}",
            )

        lun = tmp_path / "lun.img"
        with lun.open("wb") as f:
            f.truncate(64 << 20)
        tgtd = subprocess.Popen(
            ["ip", "netns", "exec", target_ns, "tgtd", "-f", "-C", port],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "tgtd.log").open("w"),
            text=True,
        )
        tgtadm = ["ip", "netns", "exec", target_ns, "tgtadm", "-C", port, "--lld", "iscsi"]
        deadline = time.monotonic() + 10
        while sh(*tgtadm, "--op", "show", "--mode", "target", check=False).returncode != 0:
            assert time.monotonic() < deadline, (tmp_path / "tgtd.log").read_text()
            time.sleep(0.2)
        sh(*tgtadm, "--op", "new", "--mode", "target", "--tid", "1", "-T", TARGET)
        sh(*tgtadm, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
           "-b", str(lun))  # fmt: skip
        sh(*tgtadm, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

        for sub in ("etc", "lock", "class", "bin"):
            (root / sub).mkdir(parents=True)
        (root / "etc" / "initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")
        system_conf = Path("/etc/iscsi/iscsid.conf")
        conf = system_conf.read_text() if system_conf.exists() else ""
        # iscsiadm would start the system's iscsid through systemd: this test starts its own
        (root / "etc" / "iscsid.conf").write_text(
            "".join(line + "\n" for line in conf.splitlines() if "iscsid.startup" not in line)
        )
        (root / "ns.sh").write_text(NS_SCRIPT)
        shim = not Path("/sys/class/iscsi_transport/tcp").exists()
        # KVMFLEET_ISCSIADM: another build to test (the pinned version built from its source)
        iscsiadm = os.environ.get("KVMFLEET_ISCSIADM") or shutil.which("iscsiadm")
        root.joinpath("bin", "iscsiadm").write_text(
            "#!/bin/sh\n"
            f"ROOT={root} SHIM={int(shim)} exec ip netns exec {host_ns} "
            f'sh {root / "ns.sh"} {iscsiadm} "$@"\n'
        )
        root.joinpath("bin", "iscsiadm").chmod(0o755)
        yield San(target_ns, host_ns, root, shim)
    finally:
        if tgtd is not None:
            tgtd.kill()  # tgtd ignores SIGTERM
            tgtd.wait(timeout=10)
            for leftover in Path("/var/run/tgtd").glob(f"socket.{port}*"):
                leftover.unlink()
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)


def adm_with(s: San, calls: list[list[str]], log: list[str]) -> Any:
    return prog.Iscsiadm(s.runner(calls), log.append)


def changing(calls: list[list[str]]) -> list[list[str]]:
    return [
        c
        for c in calls
        if ("-o" in c and c[c.index("-o") + 1] in ("new", "update", "delete"))
        or "--login" in c
        or "--logout" in c
    ]


def cfg(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "ifaces": {name: {"interface": nic} for name, nic in IFACES.items()},
        "targets": [{"portal": PORTAL, "ifaces": sorted(IFACES)}],
        "nodeSettings": NODE_SETTINGS,
        "discoverySettings": DISCOVERY_SETTINGS,
    }
    raw.update(overrides)
    return raw


# --- records: no session needed ---------------------------------------------------------------


def test_ifaces_are_bound_once_and_an_iface_created_again_is_reset(san: San) -> None:
    calls: list[list[str]] = []
    log: list[str] = []
    adm = adm_with(san, calls, log)
    config = prog.load_config(json.dumps(cfg()))
    prog.ensure_ifaces(adm, config)
    assert {n: i for n, i in prog.parse_ifaces(san.adm("-m", "iface").stdout).items()
            if n in IFACES} == IFACES  # fmt: skip
    # open-iscsi's built-in ifaces are listed too, and left alone
    assert "default" in prog.parse_ifaces(san.adm("-m", "iface").stdout)
    calls.clear()
    prog.ensure_ifaces(adm, config)
    assert changing(calls) == [], "a second run changed an iface"
    # `-o new` on an existing iface succeeds and resets it to its defaults (2.1.8 and 2.1.11;
    # usr/iscsiadm.c OP_NEW: iface_setup_defaults, iface_conf_write): the program never does it
    again = san.adm("-m", "iface", "-I", "ieth0", "-o", "new")
    assert again.returncode == 0, again.stderr
    assert prog.parse_ifaces(san.adm("-m", "iface").stdout)["ieth0"] == ""
    fake = FakeIscsiadm(ifaces={"ieth0": "san0"})
    assert fake.run(["iscsiadm", "-m", "iface", "-I", "ieth0", "-o", "new"]).code == 0
    assert fake.ifaces["ieth0"] == ""


def test_record_settings_are_keys_iscsiadm_accepts_and_read_back(san: San) -> None:
    calls: list[list[str]] = []
    adm = adm_with(san, calls, [])
    prog.ensure_ifaces(adm, prog.load_config(json.dumps(cfg())))
    selector = ["-m", "discoverydb", "-t", "sendtargets", "-p", PORTAL]
    # a missing discovery record: 6 (ISCSI_ERR_IDBM in 2.1.8 and 2.1.11), as the fake answers
    missing = san.adm(*selector, "-S")
    assert missing.returncode == 6, missing
    assert FakeIscsiadm().run(["iscsiadm", *selector, "-S"]).code == missing.returncode
    adm(*selector, "-o", "new")
    wanted = {k: str(v) for k, v in DISCOVERY_SETTINGS.items()}
    wanted |= prog.auth_settings("discovery.sendtargets", {"username": "u", "password": "p1"})
    current = prog.parse_settings(adm(*selector, "-S").out)
    # the fake's record has the real record's keys
    assert set(DISCOVERY_DEFAULTS) <= set(current)
    assert set(wanted) <= set(current), set(wanted) - set(current)
    adm.update(selector, current, wanted)
    after = prog.parse_settings(adm(*selector, "-S").out)
    assert {k: after[k] for k in wanted} == wanted
    # CHAP removed again: empty values are stored as empty, shown as <empty>
    cleared = prog.auth_settings("discovery.sendtargets", None)
    calls.clear()
    adm.update(selector, after, cleared | {k: "" for k in wanted if ".auth.user" in k})
    final = prog.parse_settings(adm(*selector, "-S").out)
    assert final["discovery.sendtargets.auth.authmethod"] == "None"
    assert final["discovery.sendtargets.auth.username"] == ""

    # a node record as discovery makes it, then the session settings kvmfleet writes
    node = prog.Node(TARGET, PORTAL, "ieth0")
    assert san.adm(*prog.node_selector(node), "-S").returncode == prog.NO_OBJECTS_FOUND
    adm(*prog.node_selector(node), "-o", "new")
    shown = prog.parse_settings(adm(*prog.node_selector(node), "-S").out)
    assert set(NODE_DEFAULTS) <= set(shown), set(NODE_DEFAULTS) - set(shown)
    node_wanted = {k: str(v) for k, v in NODE_SETTINGS.items()} | prog.auth_settings(
        "node.session", None
    )
    adm.update(prog.node_selector(node), shown, node_wanted)
    back = prog.parse_settings(adm(*prog.node_selector(node), "-S").out)
    assert {k: back[k] for k in node_wanted} == node_wanted
    calls.clear()
    assert adm.update(prog.node_selector(node), back, node_wanted) == []
    assert calls == []


def test_empty_listings_and_a_vanished_sessions_logout(san: San) -> None:
    listing = san.adm("-m", "session", "-P", "1")
    assert listing.returncode == prog.NO_OBJECTS_FOUND, listing
    # a session that vanished between the listing and the logout (2.1.8 and 2.1.11: exit 22,
    # ISCSI_ERR_SYSFS_LOOKUP)
    logout = san.adm("-m", "session", "-r", "7", "--logout")
    assert logout.returncode == prog.SYSFS_LOOKUP, logout
    fake = FakeIscsiadm()
    assert fake.run(["iscsiadm", "-m", "session", "-r", "7", "--logout"]).code == logout.returncode
    assert fake.run(["iscsiadm", "-m", "session", "-P", "1"]).code == listing.returncode
    # and the program's stop takes it as done
    config = prog.load_config(json.dumps(cfg()))
    calls: list[list[str]] = []
    assert prog.stop(adm_with(san, calls, []), config) == 0


def test_the_program_without_iscsid_binds_and_fails_naming_the_target(
    san: San, tmp_path: Path
) -> None:
    """No iscsid in the initiator's namespace: discovery cannot run (it asks iscsid for the
    initiator name), so no target has a session. The program binds the ifaces, names every
    missing path and fails (its unit retries it)."""
    done = run_program(san, tmp_path, "start")
    assert done.returncode == 1, done
    assert f"no session to any target at {PORTAL}" in done.stderr
    for iface, nic in IFACES.items():
        assert f"path missing: any target at {PORTAL} through {iface} ({nic})" in done.stdout
    assert prog.parse_ifaces(san.adm("-m", "iface").stdout).items() >= IFACES.items()
    assert len((tmp_path / "run" / "missing").read_text().splitlines()) == 2


# --- sessions: a kernel with iSCSI -------------------------------------------------------------


@pytest.fixture
def iscsid(san: San) -> Iterator[San]:
    if not kernel_has_iscsi(san.host_ns):
        pytest.skip(
            "this kernel has no iSCSI (no NETLINK_ISCSI socket or iscsi_tcp transport): "
            "iscsid cannot run, so discovery and login are not tested here"
        )
    daemon = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            san.host_ns,
            "sh",
            str(san.root / "ns.sh"),
            "iscsid",
            "-f",
            "-p",
            str(san.root / "iscsid.pid"),
        ],
        env={**os.environ, "ROOT": str(san.root), "SHIM": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        assert daemon.poll() is None, "iscsid exited"
        yield san
    finally:
        # this test's sessions only: the nodes of its own database
        san.adm("-m", "node", "-T", TARGET, "-u")
        daemon.terminate()
        daemon.wait(timeout=10)


def run_program(s: San, tmp: Path, action: str, *extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "config.json"
    config.write_text(json.dumps(cfg()))
    env = {**os.environ, "PATH": f"{s.iscsiadm.parent}{os.pathsep}{os.environ['PATH']}"}
    script = Path(prog.__file__)
    return subprocess.run(
        [
            sys.executable,
            str(script),
            "--config",
            str(config),
            "--state-dir",
            str(tmp / "run"),
            *extra,
            action,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def live_paths(s: San) -> dict[str, str]:
    """{iface: netdev} of the live sessions."""
    out = s.adm("-m", "session", "-P", "1").stdout
    found: dict[str, str] = {}
    iface = ""
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Iface Name":
            iface = value
        elif key == "Iface Netdev":
            found[iface] = value
    return found


def test_sessions_through_both_links_degraded_and_back(iscsid: San, tmp_path: Path) -> None:
    s = iscsid
    first = run_program(s, tmp_path, "start")
    assert first.returncode == 0, first
    assert live_paths(s) == IFACES
    # discovery through each iface made one node record per iface
    for iface in IFACES:
        assert s.adm(*prog.node_selector(prog.Node(TARGET, PORTAL, iface))).returncode == 0
    second = run_program(s, tmp_path, "start")
    assert second.returncode == 0 and second.stdout == "", second
    # the live sessions carry the wanted recovery_tmo
    listing = s.adm("-m", "session", "-P", "1").stdout
    for session in prog.parse_sessions(listing):
        if session.node.iface in IFACES:
            tmo = Path(f"/sys/class/iscsi_session/session{session.sid}/recovery_tmo")
            assert tmo.read_text().strip() == "15", session

    # one link down at start: degraded, bounded, the missing path named
    assert run_program(s, tmp_path, "stop").returncode == 0
    assert live_paths(s) == {}
    s.link("san1", "down")
    began = time.monotonic()
    degraded = run_program(s, tmp_path, "start")
    took = time.monotonic() - began
    assert degraded.returncode == 0, degraded
    assert live_paths(s) == {"ieth0": "san0"}
    assert f"path missing: any target at {PORTAL} through ieth1 (san1)" in degraded.stdout
    assert (tmp_path / "run" / "missing").read_text().strip().endswith("through ieth1 (san1)")
    bound = DISCOVERY_SETTINGS["discovery.sendtargets.timeo.login_timeout"] * (
        DISCOVERY_SETTINGS["discovery.sendtargets.reopen_max"] + 1
    )
    assert took < bound + 20, f"a start with one link down took {took:.0f} s"
    print(f"start with san1 down: {took:.1f} s")

    # the link back: the retry logs the path in and ends
    s.link("san1", "up")
    back = run_program(s, tmp_path, "retry", "--interval", "1")
    assert back.returncode == 0, back
    assert live_paths(s) == IFACES
    assert not (tmp_path / "run" / "missing").exists()
    assert run_program(s, tmp_path, "stop").returncode == 0
    assert live_paths(s) == {}
