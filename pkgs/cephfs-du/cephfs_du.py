#!/usr/bin/env python3
"""cephfs-du: the size of every entry of a CephFS directory, from CephFS's recursive statistics.

CephFS keeps, for every directory, the recursive byte, file and subdirectory counts and the newest
change time of its whole tree as virtual extended attributes (`ceph.dir.rbytes`, `ceph.dir.rfiles`,
`ceph.dir.rsubdirs`, `ceph.dir.rctime`). Reading them takes one `getxattr` per directory, so this
lists a directory's children, reads their attributes and never walks the tree: a second instead of
the hours `du` needs on a large file system. The figures are as fresh as the metadata server has
propagated them (usually within seconds of a change).

    cephfs-du [--json] [--bytes] DIRECTORY

Exit status: 0 on success, 1 when DIRECTORY is not a CephFS directory (or some child could not be
read: it is reported on stderr and left out), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# Reads one extended attribute of a path (without following a final symlink): os.getxattr's shape.
XattrReader = Callable[[str, str], bytes]

ATTRIBUTES = ("rbytes", "rfiles", "rsubdirs", "rctime")
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
MAX_COUNT = 2**64 - 1  # Ceph's counters are unsigned 64-bit
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class NotCephFSError(Exception):
    """The directory has no CephFS recursive statistics, or is not a directory."""


@dataclass(frozen=True)
class Usage:
    """One entry's recursive usage. `subdirs` is Ceph's rsubdirs, which counts a directory itself."""

    name: str
    kind: str  # "dir", "file", "link" or "other"
    bytes: int
    files: int
    subdirs: int
    rctime: float | None  # seconds since the epoch of the newest change in the tree


def read_xattr(path: str, name: str) -> bytes:
    return os.getxattr(path, name, follow_symlinks=False)


def parse_rctime(raw: str) -> float:
    """`1700000000.123456789` (seconds.nanoseconds) -> seconds since the epoch."""
    seconds, _, fraction = raw.strip().partition(".")
    # ASCII digits, and a time a date can show (Python's datetime ends in year 9999)
    if not (seconds.isascii() and seconds.isdigit()) or int(seconds) > MAX_SECONDS:
        raise ValueError(f"unexpected ceph.dir.rctime {raw!r}")
    digits = "".join(ch for ch in fraction if ch.isdigit())
    return int(seconds) + (int(digits[:9].ljust(9, "0")) / 1e9 if digits else 0.0)


def _counter(path: str, name: str, reader: XattrReader) -> str:
    try:
        value = reader(path, f"ceph.dir.{name}")
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise NotCephFSError(
                f"{path}: not on CephFS (it has no ceph.dir.{name} attribute)"
            ) from None
        raise
    return value.decode("ascii", "replace").strip().rstrip("\x00")


def directory_usage(path: str, name: str, reader: XattrReader) -> Usage:
    values = {attr: _counter(path, attr, reader) for attr in ATTRIBUTES}
    try:
        return Usage(
            name=name,
            kind="dir",
            bytes=_count(values["rbytes"]),
            files=_count(values["rfiles"]),
            subdirs=_count(values["rsubdirs"]),
            rctime=parse_rctime(values["rctime"]),
        )
    except ValueError as exc:
        raise NotCephFSError(f"{path}: unreadable CephFS statistics ({exc})") from None


def _count(text: str) -> int:
    """A counter as Ceph prints it: decimal digits of an unsigned 64-bit number."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_COUNT:
        raise ValueError(f"unexpected counter {text!r}")
    return int(text)


def _entry_usage(path: str, name: str, reader: XattrReader) -> Usage:
    info = Path(path).lstat()
    if stat.S_ISDIR(info.st_mode):
        return directory_usage(path, name, reader)
    # CephFS counts every non-directory (files, symlinks, ...) in rfiles and its size in rbytes.
    kind = (
        "file" if stat.S_ISREG(info.st_mode) else "link" if stat.S_ISLNK(info.st_mode) else "other"
    )
    return Usage(name, kind, info.st_size, 1, 0, info.st_ctime)


@dataclass(frozen=True)
class Report:
    total: Usage
    entries: list[Usage]
    problems: list[str]


def survey(directory: str, reader: XattrReader = read_xattr) -> Report:
    """The recursive usage of `directory` and of each of its children, largest first."""
    try:
        info = Path(directory).stat()
    except OSError as exc:
        raise NotCephFSError(f"{directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise NotCephFSError(f"{directory}: not a directory")
    total = directory_usage(directory, "total", reader)
    entries: list[Usage] = []
    problems: list[str] = []
    with os.scandir(directory) as listing:
        for entry in listing:
            try:
                entries.append(_entry_usage(entry.path, entry.name, reader))
            except (OSError, NotCephFSError) as exc:
                # a child that vanished meanwhile, or another file system mounted inside
                message = (
                    str(exc) if isinstance(exc, NotCephFSError) else f"{entry.path}: {exc.strerror}"
                )
                problems.append(message)
    entries.sort(key=lambda u: (-u.bytes, u.name))
    return Report(total, entries, problems)


def human_bytes(count: int) -> str:
    """1536 -> "1.5 KiB"; below 1 KiB exact bytes."""
    value = float(count)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def iso_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def printable(name: str) -> str:
    """Names may hold any byte but a terminal should not interpret them: escape the unprintable."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    )


def render_text(report: Report, exact: bool) -> str:
    size = str if exact else human_bytes
    header = ("SIZE", "FILES", "SUBDIRS", "NEWEST CHANGE", "NAME")
    rows = [
        (
            size(u.bytes),
            str(u.files),
            str(u.subdirs),
            iso_time(u.rctime),
            name,
        )
        for u, name in [
            *((u, printable(u.name) + ("/" if u.kind == "dir" else "")) for u in report.entries),
            (report.total, "total"),
        ]
    ]
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join([row[0].rjust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])])
        + "  "
        + row[3].ljust(widths[3])
        + "  "
        + row[4]
        for row in table
    ]
    return "\n".join(lines) + "\n"


def as_json(usage: Usage) -> dict[str, object]:
    return {
        "name": usage.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
        "type": usage.kind,
        "bytes": usage.bytes,
        "files": usage.files,
        "subdirs": usage.subdirs,
        "rctime": iso_time(usage.rctime) if usage.rctime is not None else None,
    }


def render_json(report: Report) -> str:
    document = {
        "total": as_json(report.total),
        "entries": [as_json(u) for u in report.entries],
        "errors": report.problems,
    }
    return json.dumps(document, indent=2) + "\n"


def main(
    argv: Sequence[str] | None = None,
    reader: XattrReader = read_xattr,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = argparse.ArgumentParser(
        prog="cephfs-du",
        description="Recursive size, file and subdirectory counts of each entry of a CephFS "
        "directory, from CephFS's recursive statistics (no tree walk).",
    )
    parser.add_argument("directory", help="a directory on a CephFS mount")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "-b", "--bytes", action="store_true", help="exact byte counts instead of KiB/MiB/..."
    )
    args = parser.parse_args(argv)
    try:
        report = survey(args.directory, reader)
    except NotCephFSError as exc:
        err.write(f"cephfs-du: {printable(str(exc))}\n")
        return 1
    except OSError as exc:
        err.write(f"cephfs-du: {args.directory}: {exc.strerror}\n")
        return 1
    out.write(render_json(report) if args.json else render_text(report, args.bytes))
    for problem in report.problems:
        err.write(f"cephfs-du: {printable(problem)}\n")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
