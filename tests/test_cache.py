"""The unchanged-fleet shortcut answers only when nothing it depends on changed."""

from __future__ import annotations

from pathlib import Path

import pytest

import kvmfleet.cache
import kvmfleet.generate
from conftest import run_cli
from kvmfleet.cache import CACHE_FILE


def _no_validation(*_: object) -> None:
    raise AssertionError("validated although nothing changed")


def _generated_once(root: Path) -> str:
    first = run_cli("generate", "--force", root=root)
    assert first.code == 0, first.err
    assert (root / CACHE_FILE).is_file()
    return first.err


def test_an_unchanged_fleet_is_answered_without_validating(
    demo_fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings = _generated_once(demo_fleet)
    monkeypatch.setattr(kvmfleet.generate, "build", _no_validation)
    again = run_cli("generate", root=demo_fleet)
    assert again.code == 0
    # three generated.nix and .sops.yaml
    assert again.out == "kvmfleet: 3 hosts, 0 written, 4 unchanged\n"
    assert again.err == warnings  # the same warnings, every run
    check = run_cli("generate", "--check", root=demo_fleet)
    assert (check.code, check.out) == (0, "kvmfleet: 4 generated files up to date\n")
    assert run_cli("check", root=demo_fleet).out == "kvmfleet: 3 hosts valid\n"


@pytest.mark.parametrize(
    "change",
    [
        "input",
        "site",
        "generated",
        "generated-line-endings",
        "new-host-dir",
        "generator",
        "corrupt-cache",
    ],
)
def test_any_change_takes_the_full_path(
    demo_fleet: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    _generated_once(demo_fleet)
    hosts = demo_fleet / "hosts"
    if change == "input":
        (hosts / "kvm02" / "host.toml").write_text(
            (hosts / "kvm02" / "host.toml").read_text() + "\n# a comment changes the input\n"
        )
    elif change == "site":
        (hosts / "site.toml").write_text((hosts / "site.toml").read_text() + "\n")
    elif change == "generated":
        path = hosts / "kvm01" / "generated.nix"
        path.write_text(path.read_text().replace("kvm01", "kvm09", 1))
    elif change == "generated-line-endings":
        path = hosts / "kvm01" / "generated.nix"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    elif change == "new-host-dir":
        (hosts / "kvm05").mkdir()
    elif change == "generator":
        monkeypatch.setattr(kvmfleet.cache, "_generator_digest", lambda: "another version")
    elif change == "corrupt-cache":
        (demo_fleet / CACHE_FILE).write_text("{not json")
    calls: list[Path] = []
    real_build = kvmfleet.generate.build

    def counting(root: Path) -> object:
        calls.append(root)
        return real_build(root)

    monkeypatch.setattr(kvmfleet.generate, "build", counting)
    run_cli("generate", "--check", root=demo_fleet)
    assert calls, "the shortcut answered although something changed"


def test_a_failed_or_unsettled_run_leaves_no_shortcut(demo_fleet: Path) -> None:
    _generated_once(demo_fleet)
    path = demo_fleet / "hosts" / "kvm01" / "generated.nix"
    path.write_text(path.read_text() + "# edited by hand\n")
    assert run_cli("generate", root=demo_fleet).code == 2  # refused: hand-edited
    # Still refused on the next run: the shortcut never vouches for a hand-edited file.
    assert run_cli("generate", "--check", root=demo_fleet).code == 1
