"""A run that reuses per-host results from the cache says and writes exactly what a clean full run
says and writes, after any edit: random edits to random hosts and to site.toml, each followed by
`generate` with the cache (hosts computed over a pool of workers) and `generate --no-cache` on a
fresh copy of the same files (one process), compared byte for byte."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmfleet.host_pass
import kvmfleet.warm
from conftest import REPO, Run, run_cli
from kvmfleet.cache import CACHE_FILE

HOSTS = ("kvm01", "kvm02", "x1carbon")
ODD_VALUES: list[Any] = ["", "x", -1, 0, True, "10.0.10.21", "fe80::1", [], ["hypervisor"]]


def git_init(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)


@pytest.fixture(autouse=True)
def _cache_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)  # CI disables the cache; this tests it


# What a run reads and writes: the inventory, the secrets' admins, the generated .sops.yaml.
FLEET = ("hosts", "secrets", ".sops.yaml")


def _copy(src: Path, dst: Path) -> None:
    for name in FLEET:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        elif (src / name).is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, dst / name)


def _fleet(tmp_path: Path) -> Path:
    root = tmp_path / "cached"
    _copy(REPO, root)
    git_init(root)
    return root


def _files(root: Path) -> dict[str, bytes]:
    paths = [p for name in FLEET for p in [root / name, *(root / name).rglob("*")]]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(paths) if p.is_file()}


def _leaves(table: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _leaves(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _edit(root: Path, data: st.DataObject) -> str:
    """One random edit of the inventory; returns what it did (hypothesis shows it on failure)."""
    hosts = sorted(p.name for p in (root / "hosts").iterdir() if (p / "host.toml").is_file())
    files = ["hosts/site.toml", *(f"hosts/{h}/host.toml" for h in hosts)]
    op = data.draw(
        st.sampled_from(
            [
                "comment",
                "set",
                "set",
                "delete",
                "table",
                "roles",
                "restore",
                "copy",
                "key",
                "admins",
            ]
        )
    )
    if op == "key":
        # A host key moved to another host, removed, or broken (the .sops.yaml rules, headers).
        source = REPO / "hosts" / "kvm01" / "ssh_host_ed25519_key.pub"
        host = data.draw(st.sampled_from(hosts))
        target = root / "hosts" / host / "ssh_host_ed25519_key.pub"
        how = data.draw(st.sampled_from(["copy", "remove", "break"]))
        if how == "copy":
            shutil.copy(source, target)
        elif how == "remove":
            target.unlink(missing_ok=True)
        else:
            target.write_text("ssh-ed25519 not-a-key\n")
        return f"{how} the host key of {host}"
    if op == "admins":
        admins = root / "secrets" / "admins.txt"
        how = data.draw(st.sampled_from(["remove", "restore", "break"]))
        if how == "remove":
            admins.unlink(missing_ok=True)
        elif how == "restore":
            shutil.copy(REPO / "secrets" / "admins.txt", admins)
        else:
            admins.write_text("age1nope someone\n")
        return f"{how} secrets/admins.txt"
    name = data.draw(st.sampled_from(files))
    path = root / name
    if op == "copy":
        source = data.draw(st.sampled_from(hosts))
        new = data.draw(st.sampled_from(["kvm03", "kvm04", source]))
        if new == source or (root / "hosts" / new).exists():
            shutil.rmtree(root / "hosts" / source)
            return f"remove host {source}"
        (root / "hosts" / new).mkdir()
        shutil.copy(root / "hosts" / source / "host.toml", root / "hosts" / new / "host.toml")
        return f"copy {source} to {new}"
    if op == "restore":
        original = REPO / name
        if original.is_file():
            shutil.copy(original, path)
        return f"restore {name}"
    text = path.read_text()
    if op == "comment":
        path.write_text(text + f"\n# an edit {data.draw(st.integers(0, 9))}\n")
        return f"comment in {name}"
    doc = tomlkit.parse(text)
    leaves = _leaves(doc.unwrap())
    if op in ("set", "delete") and leaves:
        leaf = data.draw(st.sampled_from(leaves))
        parent = _get(doc, leaf[:-1])
        if op == "delete":
            del parent[leaf[-1]]
        else:
            # A value of the same key elsewhere in the fleet (a duplicate, another type), or an
            # odd one.
            pool = list(ODD_VALUES)
            for other in files:
                with contextlib.suppress(KeyError, TypeError, IndexError):
                    pool.append(_get(tomlkit.parse((root / other).read_text()).unwrap(), leaf))
            parent[leaf[-1]] = data.draw(st.sampled_from(pool))
        op = f"{op} {'.'.join(leaf)}"
    elif op == "table":
        other = tomlkit.parse(
            (REPO / "hosts" / data.draw(st.sampled_from(HOSTS)) / "host.toml").read_text()
        )
        table = data.draw(st.sampled_from([*other.keys(), "no_such_table"]))
        doc[table] = other.get(table, {"key": 1})
        op = f"table {table}"
    elif op == "roles":
        roles = data.draw(st.sampled_from([["hypervisor"], ["laptop"], [], ["nope"]]))
        if name.endswith("site.toml"):
            doc.setdefault("host", {})["roles"] = roles
        else:
            doc.setdefault("host", tomlkit.table())["roles"] = roles
        op = f"roles {roles}"
    path.write_text(tomlkit.dumps(doc))
    return f"{op} in {name}"


def _same(cached: Run, clean: Run, what: str) -> None:
    assert (cached.code, cached.out, cached.err) == (clean.code, clean.out, clean.err), what


_COMMANDS = (["check"], ["generate", "--check"], ["generate"])


@settings(
    max_examples=int(os.environ.get("KVMFLEET_PROPERTY_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_reusing_per_host_results_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("property")
    root = _fleet(base)
    assert run_cli("generate", root=root).code == 0
    for step in range(data.draw(st.integers(1, 4))):
        done = _edit(root, data)
        clean = base / f"clean{step}"
        _copy(root, clean)
        git_init(clean)
        # Who computes the hosts the cache cannot answer: the warm worker, the pool (even for a
        # few hosts), or this process.
        how = data.draw(st.sampled_from(["warm worker", "pool", "one process"]))
        with monkeypatch.context() as computing:
            computing.setenv("KVMFLEET_JOBS", "1" if how == "one process" else "2")
            if how == "pool":
                computing.setattr(kvmfleet.host_pass, "MIN_PARALLEL", 2)
                computing.setattr(kvmfleet.warm, "MIN_PARALLEL", 2)
            cached = [run_cli(*args, root=root) for args in _COMMANDS]
        monkeypatch.setenv("KVMFLEET_JOBS", "1")
        for args, result in zip(_COMMANDS, cached, strict=True):
            reference = run_cli(*args, "--no-cache", root=clean)
            _same(result, reference, f"{' '.join(args)} ({how}) after: {done}")
        monkeypatch.delenv("KVMFLEET_JOBS")
        assert _files(root) == _files(clean), done
        assert not (clean / CACHE_FILE).exists()


def test_a_pool_that_cannot_start_leaves_the_work_to_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing.context

    root = _fleet(tmp_path)
    reference = run_cli("generate", "--check", "--no-cache", root=root)

    def no_pool(*_: object, **__: object) -> None:
        raise OSError(38, "Function not implemented")  # SemLock without /dev/shm

    monkeypatch.setattr(kvmfleet.host_pass, "MIN_PARALLEL", 2)
    monkeypatch.setenv("KVMFLEET_JOBS", "2")
    monkeypatch.setattr(multiprocessing.context.ForkContext, "Pool", no_pool)
    result = run_cli("generate", "--check", "--no-cache", root=root)
    assert (result.code, result.out, result.err) == (reference.code, reference.out, reference.err)
