"""The warm worker: forked at start-up to load the models while the parent reads the fleet, it
computes the few hosts an edit needs; any failure of it means the parent computes them itself,
with the same result."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kvmfleet.host_pass
import kvmfleet.warm
from conftest import REPO, run_cli
from kvmfleet.cache import CACHE_FILE
from kvmfleet.inventory import HostInventory
from kvmfleet.task import Done, Task

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CI", raising=False)  # CI disables the cache, and with it the worker
    monkeypatch.setenv("KVMFLEET_JOBS", "2")  # whatever this machine has
    root = tmp_path / "fleet"
    shutil.copytree(REPO / "hosts", root / "hosts")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert run_cli("generate", "--force", root=root).code == 0
    assert (root / CACHE_FILE).is_file()
    return root


def _edit(root: Path) -> None:
    path = root / "hosts" / "kvm02" / "host.toml"
    path.write_text(path.read_text() + '\n[packages]\nextra = ["htop"]\n')


def _where_computed(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Record the process that computes each host (forked workers inherit the patch)."""
    real = kvmfleet.host_pass.summarize

    def recording(inv: HostInventory, *, keep: bool = False) -> kvmfleet.host_pass.Computed:
        with log.open("a") as out:
            out.write(f"{inv.name} {os.getpid()}\n")
        return real(inv, keep=keep)

    monkeypatch.setattr(kvmfleet.host_pass, "summarize", recording)


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _as_from_nothing(root: Path, tmp_path: Path) -> bool:
    """Whether the fleet's generated files are those of a run from nothing in one process."""
    other = tmp_path / "clean"
    shutil.copytree(root / "hosts", other / "hosts")
    assert run_cli("generate", "--force", "--no-cache", root=other).code == 0
    return _files(root) == _files(other)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.nix")}


def test_an_edited_host_is_computed_by_the_warm_worker(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(fleet)
    log = tmp_path / "computed.log"
    _where_computed(monkeypatch, log)
    result = run_cli("generate", root=fleet)
    assert result.code == 0, result.err
    names_pids = [line.split() for line in log.read_text().splitlines()]
    assert [name for name, _ in names_pids] == ["kvm02"]
    assert names_pids[0][1] != str(os.getpid())
    assert _no_children_left()
    assert _as_from_nothing(fleet, tmp_path)
    assert "hosts/kvm02/generated.nix: written (updated)" in result.out


def test_one_core_means_no_worker(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVMFLEET_JOBS", "1")
    started: list[bool] = []
    real = kvmfleet.warm._start
    monkeypatch.setattr(kvmfleet.warm, "_start", lambda: started.append(True) or real())
    _edit(fleet)
    log = tmp_path / "computed.log"
    _where_computed(monkeypatch, log)
    assert run_cli("generate", root=fleet).code == 0
    assert log.read_text().split() == ["kvm02", str(os.getpid())]
    assert not started


@pytest.mark.parametrize("failure", ["raises", "dies"])
def test_a_failing_worker_leaves_the_work_to_the_parent(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    parent = os.getpid()
    real = kvmfleet.host_pass.compute

    def failing_in_the_worker(task: Task, *args: object) -> Done:
        if os.getpid() != parent:
            if failure == "dies":
                os._exit(3)
            raise RuntimeError("worker failure")
        return real(task, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(kvmfleet.host_pass, "compute", failing_in_the_worker)
    _edit(fleet)
    result = run_cli("generate", root=fleet)
    assert result.code == 0, result.err
    assert "hosts/kvm02/generated.nix: written (updated)" in result.out
    assert _no_children_left()
    assert _as_from_nothing(fleet, tmp_path)


@pytest.mark.parametrize("command", [["generate"], ["generate", "--check"], ["check"]])
def test_an_unused_worker_is_stopped(fleet: Path, command: list[str]) -> None:
    """Nothing to compute (an unchanged fleet, a comment): the worker ends with the run."""
    path = fleet / "hosts" / "kvm02" / "host.toml"
    for _ in range(2):
        assert run_cli(*command, root=fleet).code == 0
        assert _no_children_left()
        path.write_text(path.read_text() + "\n# a comment\n")


def test_no_cache_means_no_worker(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(kvmfleet.warm, "_start", lambda: started.append(True))
    _edit(fleet)
    assert run_cli("generate", "--no-cache", root=fleet).code == 0
    monkeypatch.setenv("CI", "true")
    assert run_cli("check", root=fleet).code == 0
    (fleet / CACHE_FILE).unlink()
    monkeypatch.delenv("CI")
    assert run_cli("check", root=fleet).code == 0
    assert not started


def test_an_invalid_edit_is_reported_as_without_the_worker(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker computes the edited host; its problems are the parent's report, word for word,
    and the worker is gone when the run fails."""
    path = fleet / "hosts" / "kvm02" / "host.toml"
    kvm01 = (fleet / "hosts" / "kvm01" / "host.toml").read_text()
    address = kvm01.split('addresses = ["', 1)[1].split('"', 1)[0]
    text = path.read_text()
    ours = text.split('addresses = ["', 1)[1].split('"', 1)[0]
    path.write_text(text.replace(ours, address, 1))
    log = tmp_path / "computed.log"
    _where_computed(monkeypatch, log)
    with_worker = run_cli("generate", root=fleet)
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["kvm02"]
    assert log.read_text().split()[1] != str(os.getpid())
    assert _no_children_left()
    monkeypatch.setenv("KVMFLEET_JOBS", "1")
    alone = run_cli("generate", "--no-cache", root=fleet)
    assert with_worker.code == alone.code == 2
    assert with_worker.err == alone.err
    assert f"IP address {address.split('/')[0]}" in with_worker.err


@pytest.mark.parametrize("refused", ["pipe", "fork"])
def test_no_descriptors_or_processes_left_means_no_worker(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    def refuse(*_: object) -> None:
        raise OSError(24, "Too many open files")

    opened: list[int] = []
    real_pipe = os.pipe

    def pipe() -> tuple[int, int]:
        if refused == "pipe" and opened:
            refuse()
        ends = real_pipe()
        opened.extend(ends)
        return ends

    monkeypatch.setattr(os, "pipe", pipe)
    if refused == "fork":
        monkeypatch.setattr(os, "fork", refuse)
    assert kvmfleet.warm._start() is None
    assert opened
    for fd in opened:  # every end made before the refusal is closed again
        with pytest.raises(OSError):
            os.fstat(fd)
    _edit(fleet)
    assert run_cli("generate", root=fleet).code == 0


def test_a_used_worker_closes_no_descriptor_twice(fleet: Path, tmp_path: Path) -> None:
    """Its pipe ends are closed once: stopping it afterwards leaves alone a file that took one of
    their numbers meanwhile."""
    with kvmfleet.warm.warm_worker(True) as worker:
        assert worker is not None
        raw = (fleet / "hosts" / "kvm02" / "host.toml").read_bytes()
        task = Task("kvm02", raw)
        import tomllib

        site = tomllib.loads((fleet / "hosts" / "site.toml").read_text())
        ends = {worker._tasks_out, worker._results_in}
        assert worker.takes(1) and worker.submit([task], site, "hosts/site.toml", fleet, True)
        results = worker.collect([task])
        assert results is not None
        done, site_problems = results
        assert done[0].summary is not None and site_problems == []
        # Files opened now get the numbers the pipe ends had.
        opened = [os.open(tmp_path / f"later{n}", os.O_WRONLY | os.O_CREAT) for n in range(8)]
        assert ends <= set(opened)
        worker.stop()
        for fd in opened:
            os.fstat(fd)  # EBADF had stop closed one of its numbers
            os.close(fd)
    assert _no_children_left()


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="needs signal masks")
@pytest.mark.parametrize("held", [False, True])
def test_interrupts_are_held_only_around_the_fork(held: bool) -> None:
    """SIGINT is blocked while the worker is forked (so that an interrupt cannot land in the
    worker before it ignores it), and the caller's mask is back afterwards."""
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
        with kvmfleet.warm.warm_worker(True) as worker:
            assert worker is not None
            assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
        assert _no_children_left()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_the_command_with_its_worker_says_what_a_run_from_nothing_says(
    fleet: Path, tmp_path: Path
) -> None:
    """As a user runs it (a new process, no model loaded before the worker forks): an edited
    host and an invalid one give the output, exit code and files of a run from nothing."""
    environment = {**os.environ, "KVMFLEET_JOBS": "2"}
    environment.pop("CI", None)

    def kvmfleet_command(root: Path, *args: str) -> tuple[int, str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "kvmfleet", "--root", str(root), *args],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    path = fleet / "hosts" / "kvm02" / "host.toml"
    kvm01 = (fleet / "hosts" / "kvm01" / "host.toml").read_text()
    ours = path.read_text().split('addresses = ["', 1)[1].split('"', 1)[0]
    theirs = kvm01.split('addresses = ["', 1)[1].split('"', 1)[0]
    for edit in ("valid", "invalid"):
        if edit == "valid":
            _edit(fleet)
        else:
            path.write_text(path.read_text().replace(ours, theirs, 1))
        clean = tmp_path / f"clean-{edit}"
        shutil.copytree(fleet, clean, ignore=shutil.ignore_patterns(".git", CACHE_FILE))
        subprocess.run(["git", "init", "-q", str(clean)], check=True)  # the same untracked files
        for args in (["check"], ["generate", "--check"], ["generate"]):
            cached = kvmfleet_command(fleet, *args)
            reference = kvmfleet_command(clean, *args, "--no-cache")
            assert cached == reference, (edit, args)
        assert _files(fleet) == _files(clean)


@pytest.mark.parametrize("edit", ["comment", "role value"])
def test_a_site_edit_for_a_few_hosts_leaves_the_models_to_the_worker(
    fleet: Path, edit: str
) -> None:
    """site.toml's own checks need the models too: the worker runs them, with the hosts the edit
    changes, so that the parent never loads the models."""
    site = fleet / "hosts" / "site.toml"
    text = site.read_text()
    if edit == "comment":
        site.write_text(text + "\n# a comment\n")
    else:
        site.write_text(text.replace('version = "4.22"', 'version = "4.22.1"', 1))
    probe = (
        "import sys\n"
        "from kvmfleet.cli import main\n"
        f"code = main(['--root', {str(fleet)!r}, 'generate'])\n"
        "print('models loaded:', 'kvmfleet.model' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    environment = {**os.environ, "KVMFLEET_JOBS": "2"}
    environment.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environment, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "models loaded: False"
