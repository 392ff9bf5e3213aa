"""A private cupsd for tests: its own config, state and spool directories under a temporary
directory, listening on loopback only (IPv4 and IPv6) on a free port, so that the real scheduler,
lpadmin, lpstat and backends run without touching the machine's CUPS.

Installations: Debian's package (/usr/sbin/cupsd, /usr/lib/cups) and, when present, the pinned CUPS
built from source under /opt/cups-<version> (see docs/laptops.md for the build commands)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# cupsd needs root for its file ownership checks and to run backends as root (the lpd and ipp
# backends are mode 0744: cupsd runs them as root).


@dataclass(frozen=True)
class CupsInstall:
    """Where one CUPS installation's programs and data are."""

    label: str
    sbin: Path
    bin: Path
    server_bin: Path
    data_dir: Path
    version: tuple[int, ...]

    def program(self, name: str) -> str:
        for directory in (self.sbin, self.bin):
            if (directory / name).exists():
                return str(directory / name)
        raise FileNotFoundError(name)

    @property
    def temporary_on_failed_query(self) -> bool:
        """CUPS 2.4.12 (commit 2e3f158, "Clean up failed IPP Everywhere permanent queues") marks
        a queue temporary when the everywhere query fails."""
        return self.version >= (2, 4, 12)


def _version(text: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else ()


def installs() -> list[CupsInstall]:
    found = []
    if Path("/usr/sbin/cupsd").exists() and shutil.which("dpkg-query"):
        query = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "cups-daemon"],
            capture_output=True,
            text=True,
            check=False,
        )
        if query.returncode == 0 and Path("/usr/sbin/lpadmin").exists():
            found.append(
                CupsInstall(
                    f"Debian {query.stdout.strip()}",
                    Path("/usr/sbin"),
                    Path("/usr/bin"),
                    Path("/usr/lib/cups"),
                    Path("/usr/share/cups"),
                    _version(query.stdout),
                )
            )
    for prefix in sorted(Path("/opt").glob("cups-2.*")):
        config = prefix / "bin" / "cups-config"
        if (prefix / "sbin" / "cupsd").exists() and config.exists():
            version = subprocess.run(
                [str(config), "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            found.append(
                CupsInstall(
                    f"CUPS {version} built from source ({prefix})",
                    prefix / "sbin",
                    prefix / "bin",
                    prefix / "lib" / "cups",
                    prefix / "share" / "cups",
                    _version(version),
                )
            )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCupsd:
    """One cupsd; start() and stop() as often as needed (its state survives, as on a laptop)."""

    def __init__(self, install: CupsInstall, root: Path) -> None:
        self.install = install
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("state", "cache", "spool", "tmp", "log", "ppd"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        (root / "cupsd.conf").write_text(
            f"""\
Listen 127.0.0.1:{self.port}
Listen [::1]:{self.port}
Browsing Off
LogLevel debug
DirtyCleanInterval 0
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""
        )
        (root / "cups-files.conf").write_text(
            f"""\
ServerRoot {root}
StateDir {root}/state
CacheDir {root}/cache
RequestRoot {root}/spool
TempDir {root}/tmp
ServerBin {install.server_bin}
DataDir {install.data_dir}
DocumentRoot {install.data_dir}/../doc/cups
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
Printcap {root}/printcap
"""
        )
        (root / "client.conf").write_text(f"ServerName 127.0.0.1:{self.port}\n")

    @property
    def env(self) -> dict[str, str]:
        """For lpadmin, lpstat, lp: this server, the C locale."""
        return dict(os.environ, CUPS_SERVER=f"127.0.0.1:{self.port}", LC_ALL="C")

    @property
    def printers_conf(self) -> Path:
        return self.root / "printers.conf"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.install.program("cupsd"),
                "-f",
                "-c",
                str(self.root / "cupsd.conf"),
                "-s",
                str(self.root / "cups-files.conf"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cupsd exited: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("cupsd did not listen")

    def stop(self) -> None:
        """SIGTERM, as systemd stops cups.service: cupsd saves its files and drops temporary
        queues (scheduler/main.c: cupsdDeleteTemporaryPrinters(1) on the way out)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.install.program(program), *args],
            capture_output=True,
            text=True,
            check=False,
            env=self.env,
            timeout=120,
        )

    def devices(self) -> dict[str, str]:
        """`lpstat -v`: queue -> device URI ("device for %s: %s" in systemv/lpstat.c)."""
        result = self.run("lpstat", "-v")
        out = {}
        for line in result.stdout.splitlines():
            match = re.match(r"device for ([^:]+): (.*)", line)
            if match:
                out[match.group(1)] = match.group(2)
        return out

    def log(self) -> str:
        path = self.root / "log" / "error_log"
        return path.read_text(errors="replace") if path.exists() else ""
