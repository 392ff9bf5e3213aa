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
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = run_cli("generate", root=root)
    assert result.code == 2, result.err
    lines = result.err.splitlines()
    for line in expected:
        assert line in lines, f"{case}: missing line\n  {line}\nin stderr:\n{result.err}"
    assert "Traceback" not in result.err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
