"""The deploy step of a rolling upgrade: what switches one host to its new generation while it is
in maintenance. Pluggable: colmena, nixos-rebuild --target-host, or a command of your own."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kvmfleet.cloudstack_api.targets import Target


class Deploy(Protocol):
    def argv(self, target: Target) -> Sequence[str]: ...

    def __call__(self, target: Target) -> int:
        """Deploy and return the exit status (0: the host runs its new generation)."""
        ...


@dataclass(frozen=True)
class CommandDeploy:
    """Runs a command in the fleet's flake directory; its output goes to the terminal."""

    root: Path
    template: tuple[str, ...]  # with {host}, {address} (Add Host's) and {target} (SSH) placeholders

    def argv(self, target: Target) -> list[str]:
        return [
            part.format(host=target.name, address=target.address, target=target.ssh_target)
            for part in self.template
        ]

    def __call__(self, target: Target) -> int:
        try:
            # Its output goes to stderr with the progress lines: stdout carries the result (--json).
            out: int | None = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            out = None
        try:
            return subprocess.run(
                self.argv(target), cwd=self.root, check=False, stdout=out
            ).returncode
        except OSError as exc:
            print(
                f"{target.name}: cannot run {self.argv(target)[0]}: {exc.strerror}",
                file=sys.stderr,
                flush=True,
            )
            return 127


def colmena(root: Path) -> CommandDeploy:
    return CommandDeploy(root, ("colmena", "apply", "--on", "{host}", "switch"))


def nixos_rebuild(root: Path) -> CommandDeploy:
    return CommandDeploy(
        root,
        ("nixos-rebuild", "switch", "--flake", ".#{host}", "--target-host", "root@{target}"),
    )


def custom(root: Path, command: str) -> CommandDeploy:
    return CommandDeploy(root, tuple(shlex.split(command)))
