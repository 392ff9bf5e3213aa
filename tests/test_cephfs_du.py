"""cephfs-du: recursive usage from CephFS's ceph.dir.r* attributes, read through an injected reader."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import host_program

du: Any = host_program("cephfs-du")


class FakeCephFS:
    """ceph.dir.* attributes of directories in a real scratch tree; other paths have none."""

    def __init__(self) -> None:
        self.attrs: dict[str, dict[str, bytes]] = {}
        self.calls: list[tuple[str, str]] = []

    def set(self, path: Path, rbytes: int, rfiles: int, rsubdirs: int, rctime: str) -> None:
        self.attrs[str(path)] = {
            "ceph.dir.rbytes": str(rbytes).encode(),
            "ceph.dir.rfiles": str(rfiles).encode(),
            "ceph.dir.rsubdirs": str(rsubdirs).encode(),
            "ceph.dir.rctime": rctime.encode(),
        }

    def __call__(self, path: str, name: str) -> bytes:
        self.calls.append((path, name))
        try:
            return self.attrs[path][name]
        except KeyError:
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA), path) from None


def run(*argv: str, reader: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = du.main(list(argv), reader=reader, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, FakeCephFS]:
    root = tmp_path / "cephfs"
    (root / "images" / "old").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "notes.txt").write_bytes(b"x" * 10)
    (root / "link").symlink_to("notes.txt")
    fs = FakeCephFS()
    fs.set(root, 5 * 2**30 + 3000 + 10 + 9, 7, 4, "1764400000.500000000")
    fs.set(root / "images", 5 * 2**30, 3, 2, "1764300000.000000001")
    fs.set(root / "images" / "old", 2**30, 1, 1, "1764000000.0")
    fs.set(root / "home", 3000, 2, 1, "1764400000.500000000")
    return root, fs


def test_survey_sorts_children_by_size_and_totals_from_the_directory(
    tree: tuple[Path, FakeCephFS],
) -> None:
    root, fs = tree
    report = du.survey(str(root), fs)
    assert [(u.name, u.kind, u.bytes, u.files, u.subdirs) for u in report.entries] == [
        ("images", "dir", 5 * 2**30, 3, 2),
        ("home", "dir", 3000, 2, 1),
        ("notes.txt", "file", 10, 1, 0),
        ("link", "link", len("notes.txt"), 1, 0),
    ]
    assert (report.total.bytes, report.total.files, report.total.subdirs) == (
        5 * 2**30 + 3019,
        7,
        4,
    )
    assert report.problems == []


def test_no_tree_walk_only_the_directory_and_its_children_are_asked(
    tree: tuple[Path, FakeCephFS],
) -> None:
    root, fs = tree
    du.survey(str(root), fs)
    asked = {path for path, _ in fs.calls}
    assert asked == {str(root), str(root / "images"), str(root / "home")}
    assert str(root / "images" / "old") not in asked
    # four attributes each, once
    assert len(fs.calls) == 3 * 4


def test_text_output_is_human_readable_with_a_total_line(tree: tuple[Path, FakeCephFS]) -> None:
    root, fs = tree
    code, out, err = run(str(root), reader=fs)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["SIZE", "FILES", "SUBDIRS", "NEWEST", "CHANGE", "NAME"]
    assert lines[1].split() == ["5.0", "GiB", "3", "2", "2025-11-28T03:20:00Z", "images/"]
    assert lines[2].split()[:2] == ["2.9", "KiB"]
    assert lines[2].endswith(" home/")
    assert lines[3].split()[:2] == ["10", "B"]
    assert lines[-1].split() == ["5.0", "GiB", "7", "4", "2025-11-29T07:06:40Z", "total"]
    assert len(lines) == 6


def test_exact_bytes(tree: tuple[Path, FakeCephFS]) -> None:
    root, fs = tree
    code, out, _ = run("--bytes", str(root), reader=fs)
    assert code == 0
    assert out.splitlines()[1].split()[0] == str(5 * 2**30)


def test_json_output(tree: tuple[Path, FakeCephFS]) -> None:
    root, fs = tree
    code, out, _ = run("--json", str(root), reader=fs)
    assert code == 0
    document = json.loads(out)
    assert document["total"] == {
        "name": "total",
        "type": "dir",
        "bytes": 5 * 2**30 + 3019,
        "files": 7,
        "subdirs": 4,
        "rctime": "2025-11-29T07:06:40Z",
    }
    assert [e["name"] for e in document["entries"]] == ["images", "home", "notes.txt", "link"]
    assert document["entries"][1]["bytes"] == 3000
    assert document["errors"] == []


def test_not_on_cephfs_is_a_clear_error(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path), reader=FakeCephFS())
    assert (code, out) == (1, "")
    assert err == f"cephfs-du: {tmp_path}: not on CephFS (it has no ceph.dir.rbytes attribute)\n"


def test_unsupported_xattrs_are_not_cephfs_either(tmp_path: Path) -> None:
    def no_xattrs(path: str, name: str) -> bytes:
        raise OSError(errno.ENOTSUP, "Operation not supported", path)

    code, _, err = run(str(tmp_path), reader=no_xattrs)
    assert code == 1
    assert "not on CephFS" in err


def test_not_a_directory(tree: tuple[Path, FakeCephFS]) -> None:
    root, fs = tree
    code, out, err = run(str(root / "notes.txt"), reader=fs)
    assert (code, out) == (1, "")
    assert err == f"cephfs-du: {root / 'notes.txt'}: not a directory\n"


def test_missing_directory(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope"), reader=FakeCephFS())
    assert code == 1
    assert err == f"cephfs-du: {tmp_path / 'nope'}: No such file or directory\n"


def test_a_child_on_another_file_system_is_reported_and_left_out(
    tree: tuple[Path, FakeCephFS],
) -> None:
    root, fs = tree
    (root / "mnt").mkdir()  # e.g. another file system mounted inside
    code, out, err = run("--json", str(root), reader=fs)
    assert code == 1
    assert "mnt" not in [e["name"] for e in json.loads(out)["entries"]]
    assert err == (
        f"cephfs-du: {root / 'mnt'}: not on CephFS (it has no ceph.dir.rbytes attribute)\n"
    )


def test_garbage_statistics_are_an_error_not_a_traceback(tmp_path: Path) -> None:
    fs = FakeCephFS()
    fs.set(tmp_path, 1, 1, 1, "yesterday")
    code, _, err = run(str(tmp_path), reader=fs)
    assert code == 1
    assert "unreadable CephFS statistics" in err


def test_unprintable_names_are_escaped(tree: tuple[Path, FakeCephFS]) -> None:
    root, fs = tree
    (root / "evil\x1b[2Jname").write_bytes(b"")
    code, out, _ = run(str(root), reader=fs)
    assert code == 0
    assert "\x1b" not in out
    assert "evil\\x1b[2Jname" in out


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("1764400000.500000000", 1764400000.5),
        ("1764400000", 1764400000.0),
        ("1764400000.000000001\x00", 1764400000.000000001),
    ],
)
def test_parse_rctime(raw: str, seconds: float) -> None:
    assert du.parse_rctime(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (2**60 * 3, "3.0 EiB")],
)
def test_human_bytes(count: int, text: str) -> None:
    assert du.human_bytes(count) == text
