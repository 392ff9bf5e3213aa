"""The cache: an unchanged fleet is answered without validating; an edit recomputes only the hosts
whose inputs changed; and the cache is trusted only where nobody else can have written it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kvmfleet.cache
import kvmfleet.host_pass
import kvmfleet.run
import kvmfleet.warm
from conftest import REPO, run_cli
from kvmfleet.cache import CACHE_FILE, KEY_FILE
from kvmfleet.host_pass import Computed
from kvmfleet.inventory import HostInventory


@pytest.fixture(autouse=True)
def _cache_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)  # CI disables the cache; these tests are about it


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """The demo fleet in a git work tree (the cache's key lives in the git directory)."""
    root = tmp_path / "fleet"
    shutil.copytree(REPO / "hosts", root / "hosts")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _generated_once(root: Path) -> str:
    first = run_cli("generate", "--force", root=root)
    assert first.code == 0, first.err
    assert (root / CACHE_FILE).is_file()
    return first.err


class _Computed:
    """The hosts the next runs validate and render, in whatever process (this one, the warm
    worker, a pool worker: each inherits the patched function and appends to one file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
        self.log = log
        self.pids = log.with_suffix(".pids")
        real = kvmfleet.host_pass.summarize

        def counting(inv: HostInventory, *, keep: bool = False) -> Computed:
            with self.log.open("a") as names, self.pids.open("a") as pids:
                names.write(f"{inv.name}\n")
                pids.write(f"{os.getpid()}\n")
            return real(inv, keep=keep)

        monkeypatch.setattr(kvmfleet.host_pass, "summarize", counting)

    def names(self) -> list[str]:
        return sorted(self.log.read_text().split()) if self.log.exists() else []

    def elsewhere(self) -> bool:
        """Whether every host was computed in another process than this one."""
        pids = self.pids.read_text().split() if self.pids.exists() else []
        return bool(pids) and str(os.getpid()) not in pids


def _computed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Computed:
    return _Computed(monkeypatch, tmp_path / "computed.log")


def _no_run(*_: object) -> None:
    raise AssertionError("validated although nothing changed")


def test_an_unchanged_fleet_is_answered_without_validating(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings = _generated_once(fleet)
    monkeypatch.setattr(kvmfleet.run, "run", _no_run)
    again = run_cli("generate", root=fleet)
    assert again.code == 0
    # three generated.nix and .sops.yaml
    assert again.out == "kvmfleet: 3 hosts; files: 0 written, 4 unchanged\n"
    assert again.err == warnings  # the same warnings, every run
    check = run_cli("generate", "--check", root=fleet)
    assert (check.code, check.out) == (0, "kvmfleet: 4 generated files up to date\n")
    assert run_cli("check", root=fleet).out == "kvmfleet: 3 hosts valid\n"


@pytest.mark.parametrize(
    ("edit", "recomputed"),
    [
        ("comment in a host", []),  # same data: the summary stands
        ("value in a host", ["kvm02"]),
        ("hypervisor role table", ["kvm01", "kvm02"]),
        ("site top level", ["kvm01", "kvm02", "x1carbon"]),
        ("comment in site.toml", []),
        ("generated file edited", ["kvm01"]),  # its text is needed again (to say what changed)
    ],
)
def test_an_edit_recomputes_only_the_hosts_it_can_change(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str, recomputed: list[str]
) -> None:
    _generated_once(fleet)
    hosts = fleet / "hosts"
    site = hosts / "site.toml"
    if edit == "comment in a host":
        path = hosts / "kvm02" / "host.toml"
        path.write_text(path.read_text() + "\n# a comment\n")
    elif edit == "value in a host":
        path = hosts / "kvm02" / "host.toml"
        path.write_text(path.read_text() + '\n[packages]\nextra = ["htop"]\n')
    elif edit == "hypervisor role table":
        site.write_text(site.read_text().replace('version = "4.22"', 'version = "4.21"', 1))
    elif edit == "site top level":
        site.write_text(site.read_text().replace('"screen"', '"screen", "htop"', 1))
    elif edit == "comment in site.toml":
        site.write_text(site.read_text() + "\n# a comment\n")
    elif edit == "generated file edited":
        path = hosts / "kvm01" / "generated.nix"
        path.write_text(path.read_text() + "\n")
    computed = _computed(monkeypatch, tmp_path)
    run_cli("generate", "--check", root=fleet)
    assert computed.names() == recomputed


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
    fleet: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    _generated_once(fleet)
    hosts = fleet / "hosts"
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
        monkeypatch.setattr(kvmfleet.cache, "generator_digest", lambda: "another version")
    elif change == "corrupt-cache":
        (fleet / CACHE_FILE).write_text("{not json")
    calls: list[Path] = []
    real_run = kvmfleet.run.run

    def counting(
        root: Path,
        store: kvmfleet.cache.Store | None,
        inputs: kvmfleet.cache.Inputs | None = None,
        warm: kvmfleet.warm.WarmWorker | None = None,
        *,
        saves: bool = False,
    ) -> kvmfleet.run.Outcome:
        calls.append(root)
        return real_run(root, store, inputs, warm, saves=saves)

    monkeypatch.setattr(kvmfleet.run, "run", counting)
    run_cli("generate", "--check", root=fleet)
    assert calls, "the shortcut answered although something changed"


def test_a_failed_or_unsettled_run_leaves_no_shortcut(fleet: Path) -> None:
    _generated_once(fleet)
    path = fleet / "hosts" / "kvm01" / "generated.nix"
    path.write_text(path.read_text() + "# edited by hand\n")
    assert run_cli("generate", root=fleet).code == 2  # refused: hand-edited
    # Still refused on the next run: the shortcut never vouches for a hand-edited file.
    assert run_cli("generate", "--check", root=fleet).code == 1


# --- trust ---------------------------------------------------------------------------------------


def _break(root: Path) -> None:
    """An invalid inventory: kvm02 takes kvm01's address."""
    path = root / "hosts" / "kvm02" / "host.toml"
    kvm01 = (root / "hosts" / "kvm01" / "host.toml").read_text()
    ours = re.search(r'"(10\.0\.10\.\d+)/24"', path.read_text())
    theirs = re.search(r'"(10\.0\.10\.\d+)/24"', kvm01)
    assert ours and theirs
    path.write_text(path.read_text().replace(ours[1], theirs[1]))


def _forge(root: Path) -> str:
    """A cache that vouches for the inventory as it is now: the recorded run's, with every input
    digest replaced by the current one (what someone who read this module could write), under
    the old seal. Returns the forged body (to seal)."""
    seal, body = (root / CACHE_FILE).read_text().split("\n", 1)
    key = kvmfleet.cache.input_key(root)
    assert key is not None
    *records, meta_line, end = body.split("\n")
    assert end == ""
    lines = []
    for record in records:
        name, head, declared = record.split("\t")
        entry = json.loads(head)
        entry["bytes"] = kvmfleet.run._sha((root / "hosts" / name / "host.toml").read_bytes())
        lines.append(f"{name}\t{json.dumps(entry)}\t{declared}")
    meta = json.loads(meta_line)
    meta["fleet"]["key"] = key
    lines.append(json.dumps(meta))
    forged = "\n".join(lines) + "\n"
    (root / CACHE_FILE).write_text(f"{seal}\n{forged}")
    return forged


def _invalid_reported(root: Path) -> None:
    for args in (["check"], ["generate", "--check"]):
        result = run_cli(*args, root=root)
        assert result.code == 2, (args, result.out, result.err)
        assert "IP address 10.0.10." in result.err


def test_a_forged_cache_never_vouches_for_an_invalid_inventory(fleet: Path) -> None:
    _generated_once(fleet)
    _break(fleet)
    _forge(fleet)
    _invalid_reported(fleet)


def test_a_cache_copied_from_another_clone_is_not_trusted(fleet: Path, tmp_path: Path) -> None:
    _generated_once(fleet)
    other = tmp_path / "other"
    shutil.copytree(fleet / "hosts", other / "hosts")
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    _break(other)
    shutil.copy(fleet / CACHE_FILE, other / CACHE_FILE)
    _forge(other)  # sealed with the first clone's key, which this clone does not have
    _invalid_reported(other)


def test_a_tracked_cache_is_never_trusted(fleet: Path) -> None:
    _generated_once(fleet)
    subprocess.run(["git", "-C", str(fleet), "add", CACHE_FILE], check=True)
    _break(fleet)
    # Even the genuine seal of this clone does not help a committed cache.
    key = (fleet / ".git" / KEY_FILE).read_bytes()
    (fleet / CACHE_FILE).write_bytes(kvmfleet.cache._sealed(key, _forge(fleet)))
    result = run_cli("check", root=fleet)
    assert result.code == 2
    assert f"warning: {CACHE_FILE}: tracked by git, so it is never trusted" in result.err
    before = (fleet / CACHE_FILE).read_bytes()
    _invalid_reported(fleet)
    assert (fleet / CACHE_FILE).read_bytes() == before  # a tracked file is not rewritten


def test_the_seal_is_what_makes_the_cache_trusted(fleet: Path) -> None:
    """The forgery above, sealed with this clone's key, is believed: the seal and the checks
    around it are what stand between a written file and a skipped validation."""
    _generated_once(fleet)
    _break(fleet)
    key = (fleet / ".git" / KEY_FILE).read_bytes()
    (fleet / CACHE_FILE).write_bytes(kvmfleet.cache._sealed(key, _forge(fleet)))
    assert run_cli("check", root=fleet).code == 0
    assert run_cli("check", "--no-cache", root=fleet).code == 2


@pytest.mark.parametrize("setting", ["--no-cache", "CI=true", "CI=1"])
def test_no_cache_and_ci_validate_in_full(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    _generated_once(fleet)
    computed = _computed(monkeypatch, tmp_path)
    args = ["generate", "--check"]
    if setting == "--no-cache":
        args.append(setting)
    else:
        monkeypatch.setenv("CI", setting.split("=")[1])
    before = (fleet / CACHE_FILE).read_bytes()
    assert run_cli(*args, root=fleet).code == 0
    assert computed.names() == ["kvm01", "kvm02", "x1carbon"]
    assert (fleet / CACHE_FILE).read_bytes() == before  # neither read nor written


def test_outside_a_git_work_tree_there_is_no_cache(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    shutil.copytree(REPO / "hosts", root / "hosts")
    assert run_cli("generate", root=root).code == 0
    assert not (root / CACHE_FILE).exists()


@pytest.mark.parametrize("kind", ["link", "directory"])
def test_a_cache_that_is_no_regular_file_is_neither_read_nor_written(
    fleet: Path, tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "outside.json"
    if kind == "link":
        (fleet / CACHE_FILE).symlink_to(outside)
    else:
        (fleet / CACHE_FILE).mkdir()
    result = run_cli("generate", root=fleet)
    assert result.code == 0, result.err
    assert f"warning: {CACHE_FILE}: not a regular file; the cache is not used" in result.err
    assert not outside.exists()
    assert (fleet / CACHE_FILE).is_symlink() == (kind == "link")


def test_a_linked_key_is_not_used(fleet: Path, tmp_path: Path) -> None:
    outside = tmp_path / "key"
    (fleet / ".git" / KEY_FILE).symlink_to(outside)
    assert run_cli("generate", root=fleet).code == 0
    assert not outside.exists()
    assert not (fleet / CACHE_FILE).exists()


def test_records_sealed_ahead_give_the_same_file(fleet: Path) -> None:
    """Store.prepare seals the reused records while a worker computes: the file `save` writes
    is byte for byte the one it writes without, and a prepared record that changed meanwhile
    (another object) is not taken from the preparation."""
    _generated_once(fleet)
    store, _ = kvmfleet.cache.open_store(fleet, set())
    assert store is not None and len(store.hosts) == 3
    store.save(None)
    plain = (fleet / CACHE_FILE).read_bytes()
    reused = dict(list(store.hosts.items())[:2])
    store.prepare(reused)
    store.save(None)
    assert (fleet / CACHE_FILE).read_bytes() == plain
    first = next(iter(store.hosts))
    store.hosts[first] = store.hosts[first].replace('"bytes":"', '"bytes":"0', 1)
    store.save(None)
    changed = (fleet / CACHE_FILE).read_bytes()
    assert changed != plain
    reopened, _ = kvmfleet.cache.open_store(fleet, set())
    assert reopened is not None and reopened.hosts == store.hosts  # sealed over what it holds
