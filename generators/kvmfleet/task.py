"""One host's job and its result as they travel between processes (a pool worker, the warm
worker): plain data, and light imports, so that a parent which never validates a host itself
never loads the models."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from kvmfleet.inventory import HOST_FILE, HOSTS_DIR
from kvmfleet.problems import Problem
from kvmfleet.summary import HostSummary, decode, encode

# At least this many hosts to compute before a pool pays for its start (forks, result transfer).
MIN_PARALLEL = 32


@dataclass(frozen=True)
class Task:
    name: str
    raw: bytes  # its host.toml


@dataclass(frozen=True)
class Done:
    """A task's result: the parse problems, or the host's summary (and generated file)."""

    name: str
    problems: tuple[Problem, ...]
    summary: HostSummary | None
    text: str | None
    data: str | None  # digest of the parsed host.toml (a comment does not change it)
    layers: tuple[str, ...]  # the roles whose site.toml tables it was layered with
    # The summary as `summary.encode` gave it, when it came from another process: the cache
    # keeps it as it is instead of encoding the summary again.
    encoded: dict[str, Any] | None = None


def to_wire(done: Done) -> tuple[Any, ...]:
    """A result as plain data (a summary's declarations are already text)."""
    summary = None if done.summary is None else encode(done.summary)
    return (done.problems, summary, done.text, done.data, done.layers)


def from_wire(name: str, wire: tuple[Any, ...]) -> Done:
    problems, summary, text, data, layers = wire
    file = f"{HOSTS_DIR}/{name}/{HOST_FILE}"
    decoded = None if summary is None else decode(name, file, summary)
    return Done(name, problems, decoded, text, data, layers, summary)


def jobs() -> int:
    """Worker processes: the cores this process may use, or KVMFLEET_JOBS."""
    wanted = os.environ.get("KVMFLEET_JOBS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def can_fork() -> bool:
    """Whether worker processes can be forked (multiprocessing's "fork" start method exists
    exactly where os.fork does; importing multiprocessing costs more than an edit's decoding)."""
    return hasattr(os, "fork")
