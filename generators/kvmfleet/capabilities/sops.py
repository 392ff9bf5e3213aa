"""Secret files from the host's sops file: every secret file the capabilities declare becomes a
`kvmfleet.secrets.files` entry (modules/secrets.nix: a sops-nix secret at that very path), once
the host has a public host key (hosts/<name>/ssh_host_ed25519_key.pub) and `[secrets]` does not
opt out. Without a host key nothing changes: the files are provisioned by hand."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from kvmfleet.capability import Capability, HostContext, SecretFile, Settings
from kvmfleet.problems import Finding, error, format_keypath, quote


def secret_key(file: str) -> str:
    """Where a secret file's value lives in the host's sops file: its path without the leading
    "/", each "/" a level of nesting (sops-nix splits keys at "/"), so the file mirrors the
    host's tree: var: lib: secrets: root.hash."""
    return file.lstrip("/")


@dataclass(frozen=True)
class Provisioned:
    """One secret file installed from the sops file, with every declaration naming it."""

    file: str
    declarations: tuple[SecretFile, ...]

    @property
    def first(self) -> SecretFile:
        return self.declarations[0]

    @property
    def key(self) -> str:
        return secret_key(self.file)


def provisioned(ctx: HostContext) -> list[Provisioned]:
    """The secret files the host's sops file must hold (in declaration order), or none when the
    host has no host key or opts out."""
    from kvmfleet.capabilities import secret_files  # the registry imports this module

    if ctx.host_key is None or not ctx.host.secrets.provision:
        return []
    manual = set(ctx.host.secrets.manual)
    by_file: dict[str, list[SecretFile]] = {}
    for secret in secret_files(ctx):
        if secret.file not in manual:
            by_file.setdefault(secret.file, []).append(secret)
    return [Provisioned(file, tuple(decls)) for file, decls in by_file.items()]


def settings(ctx: HostContext) -> Settings:
    files = provisioned(ctx)
    if not files:
        return {}
    return {
        "kvmfleet": {
            "secrets": {
                "enable": True,
                "files": {
                    p.file: {
                        "key": p.key,
                        "owner": p.first.owner,
                        "group": p.first.group,
                        "mode": p.first.mode,
                        "neededForUsers": p.first.before_users,
                    }
                    for p in files
                },
            }
        }
    }


def findings(ctx: HostContext) -> Iterator[Finding]:
    from kvmfleet.capabilities import secret_files

    declared = {s.file for s in secret_files(ctx)}
    for index, file in enumerate(ctx.host.secrets.manual):
        if file not in declared:
            yield error(
                ("secrets", "manual", index),
                "is not a secret file of this host (list only paths that other keys name)",
            )
    files = provisioned(ctx)
    for p in files:
        for other in p.declarations[1:]:
            if (other.owner, other.group, other.mode, other.before_users) != (
                p.first.owner,
                p.first.group,
                p.first.mode,
                p.first.before_users,
            ):
                yield error(
                    other.path,
                    f"names the secret file {quote(p.file)} that {format_keypath(p.first.path)} names "
                    f"too, for a reader that needs other owner, mode or timing ({other.reader} "
                    f"and {p.first.reader}): give each its own file",
                )
    keys = sorted(p.key for p in files)
    for shorter, longer in itertools.pairwise(keys):
        if longer.startswith(shorter + "/"):
            (p,) = [p for p in files if p.key == longer]
            yield error(
                p.first.path,
                f"is inside the secret file {quote('/' + shorter)}: a file cannot be a directory",
            )


CAPABILITY = Capability("sops", ("secrets",), settings, findings)
