"""docs/inventory.md's tables: one row per key, four cells each, whatever a description holds."""

from __future__ import annotations

import re

from kvmfleet import reference


def test_a_bar_in_a_description_is_escaped_once() -> None:
    assert reference._cell('"a" | "b"') == '"a" \\| "b"'
    assert reference._cell('"a" \\| "b"') == '"a" \\| "b"'
    assert reference._cell("two\nlines") == "two lines"


def test_every_table_row_has_four_cells() -> None:
    for line in reference.markdown().splitlines():
        if line.startswith("| `"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 5, line
