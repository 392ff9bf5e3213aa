"""A worker forked at start-up that loads the models (a fifth of a second: pydantic builds every
validator at import) while the parent lists the inventory, reads the cache and decodes the
summaries it can reuse. When the run then finds a few hosts to compute, the warm worker computes
them: an edit of one host costs the larger of the two, not their sum. A run that needs no host
computed (an unchanged fleet, a comment) or many (the pool's job) stops it unused.

Only where it can pay: forking is available and this process may use two cores or more. Results
travel as `task.to_wire` data, exactly as from the pool; a worker that fails or dies means the
parent computes the hosts itself (and meets the same error, if any, in its own process)."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

from kvmfleet.inventory import Table
from kvmfleet.problems import Problem
from kvmfleet.task import MIN_PARALLEL, Done, Task, can_fork, from_wire, jobs, to_wire


class WarmWorker:
    def __init__(self, pid: int, tasks_out: int, results_in: int) -> None:
        self._pid: int | None = pid
        self._submitted = False
        # Our ends of the two pipes, None once handed to a file object (which closes it): a
        # descriptor is never closed twice, as its number may belong to another file by then.
        self._tasks_out: int | None = tasks_out
        self._results_in: int | None = results_in

    @property
    def busy(self) -> bool:
        """Whether it computes tasks submitted and not collected yet (the parent has time)."""
        return self._pid is not None and self._submitted

    def takes(self, count: int) -> bool:
        """Whether `count` hosts are this worker's job (more go to the pool)."""
        return self._pid is not None and count < MIN_PARALLEL

    def submit(
        self, tasks: Sequence[Task], site: Table, site_file: str, root: Path, check_site: bool
    ) -> bool:
        """Hand the tasks over, and site.toml to check if `check_site` (the worker may still be
        loading the models: the parent goes on until `collect`); False if the worker cannot
        take them."""
        if self._pid is None or self._tasks_out is None:
            return False
        tasks_data = [(t.name, t.raw) for t in tasks]
        payload = pickle.dumps((tasks_data, site, site_file, root, check_site))
        _make_room(self._tasks_out, len(payload))
        fd, self._tasks_out = self._tasks_out, None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
        except OSError:
            self.stop()
            return False
        self._submitted = True
        return True

    def collect(self, tasks: Sequence[Task]) -> tuple[list[Done], list[Problem] | None] | None:
        """The submitted tasks' results in order and site.toml's findings (if asked for), or None
        if the worker could not give them."""
        if self._pid is None or self._results_in is None:
            return None
        fd, self._results_in = self._results_in, None
        try:
            with os.fdopen(fd, "rb") as results:
                data = results.read()
        except OSError:
            self.stop()
            return None
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not data:
            return None
        try:
            wire, site_problems = pickle.loads(data)
            return [from_wire(t.name, w) for t, w in zip(tasks, wire, strict=True)], site_problems
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError):
            return None

    def stop(self) -> None:
        """End the worker, used or not."""
        for fd in (self._tasks_out, self._results_in):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._tasks_out = self._results_in = None
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            self._pid = None


def _make_room(fd: int, size: int) -> None:
    """Let a pipe hold `size` bytes where the system allows (Linux), so that the parent hands
    its tasks over without waiting for the worker to read them."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


@contextlib.contextmanager
def warm_worker(wanted: bool) -> Iterator[WarmWorker | None]:
    """A warm worker for the run inside the block (None where it cannot pay), always stopped at
    its end."""
    worker = _start() if wanted and jobs() >= 2 and can_fork() else None
    try:
        yield worker
    finally:
        if worker is not None:
            worker.stop()


def _start() -> WarmWorker | None:
    fds: list[int] = []
    # An interrupt between the fork and the worker's ignoring it would unwind the parent's
    # code in the worker: it is held back until each side has settled.
    blocked = _block_interrupts()
    try:
        for _ in range(2):
            fds += os.pipe()
        pid = os.fork()
    except OSError:  # no descriptors or processes left: the run does without
        for fd in fds:
            os.close(fd)
        _unblock_interrupts(blocked)
        return None
    tasks_in, tasks_out, results_in, results_out = fds
    if pid == 0:  # the worker: never returns
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's to handle
            _unblock_interrupts(blocked)
            os.close(tasks_out)
            os.close(results_in)
            _serve(tasks_in, results_out)
        finally:
            os._exit(1)
    _unblock_interrupts(blocked)
    os.close(tasks_in)
    os.close(results_out)
    return WarmWorker(pid, tasks_out, results_in)


def _block_interrupts() -> set[int | signal.Signals] | None:
    """Hold SIGINT back; returns the signal mask to restore (None: no masks here)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _unblock_interrupts(mask: set[int | signal.Signals] | None) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _serve(tasks_in: int, results_out: int) -> None:
    """Load the models, wait for tasks (none: the parent needs nothing), compute, answer. Leaves
    with os._exit: the parent's buffers and exit handlers are not the worker's to run."""
    code = 1
    try:
        # The worker ends when the parent does (EOF on its tasks).
        from kvmfleet.host_pass import compute
        from kvmfleet.site import check_site

        with os.fdopen(tasks_in, "rb") as incoming:
            payload = incoming.read()
        if payload:
            tasks, site, site_file, root, site_wanted = pickle.loads(payload)
            wire = [to_wire(compute(Task(n, raw), site, site_file, root)) for n, raw in tasks]
            site_problems = check_site(site, site_file) if site_wanted else None
            with os.fdopen(results_out, "wb") as outgoing:
                outgoing.write(pickle.dumps((wire, site_problems)))
        code = 0
    except BaseException:
        code = 1
    finally:
        os._exit(code)
