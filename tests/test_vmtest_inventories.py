"""Every VM test's inventory (checks/<test>/hosts/) has its generated files committed and fresh:
the test imports them, so a stale one tests something the generator no longer writes."""

from __future__ import annotations

import pytest

from conftest import REPO, run_cli

INVENTORIES = sorted(p.parent.name for p in (REPO / "checks").glob("*/hosts") if p.is_dir())


def test_every_vm_test_with_an_inventory_is_covered() -> None:
    assert len(INVENTORIES) >= 8


@pytest.mark.parametrize("test", INVENTORIES)
def test_vm_test_inventory_generated_files_are_up_to_date(test: str) -> None:
    result = run_cli("generate", "--check", root=REPO / "checks" / test)
    assert result.code == 0, (
        result.out + result.err + f"\nrun: kvmfleet generate --root checks/{test}"
    )
