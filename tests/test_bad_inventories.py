"""The bad-input corpus: every case under tests/data/bad/<case>/ is a fleet root that must be rejected
with exit code 2, the exact lines listed in its `expected` file, no traceback and no file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DATA, copy_fleet, run_cli

CASES = sorted(p.name for p in (DATA / "bad").iterdir() if p.is_dir())


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_bad_inventory_is_rejected(case: str, tmp_path: Path) -> None:
    src = DATA / "bad" / case
    root = copy_fleet(src, tmp_path / case)
    expected = [line for line in (src / "expected").read_text().splitlines() if line.strip()]
    assert expected, f"{case}: the expected file lists no line"
    before = _snapshot(root)
    result = run_cli("generate", root=root)
    assert result.code == 2, result.err
    lines = result.err.splitlines()
    for line in expected:
        assert line in lines, f"{case}: missing line\n  {line}\nin stderr:\n{result.err}"
    # Every error is one that the case expects: no follow-on noise.
    errors = [line for line in lines if not line.startswith(("warning: ", "kvmfleet: "))]
    assert sorted(errors) == sorted(e for e in expected if not e.startswith("warning: ")), (
        result.err
    )
    assert "Traceback" not in result.err
    assert _snapshot(root) == before


def _snapshot(root: Path) -> list[tuple[str, bytes, int]]:
    """Every file with its content and modification time: "nothing written" must hold exactly."""
    return sorted(
        (str(p.relative_to(root)), p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    )
