"""People who log in besides root (`[users.<name>]`) -> users.users.<name>: normal users with SSH
keys, a password hash file for the console and sudo, and supplementary groups."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capability import Capability, HostContext, SecretFile, Settings
from kvmfleet.model.users import User
from kvmfleet.problems import Finding, error, quote, warning


def settings(ctx: HostContext) -> Settings:
    users = {name: _user(user) for name, user in ctx.host.users.items()}
    return {"users": {"users": users}} if users else {}


def _user(user: User) -> Settings:
    out: Settings = {"isNormalUser": True}
    if user.groups:
        out["extraGroups"] = list(user.groups)
    if user.authorized_keys:
        out["openssh"] = {"authorizedKeys": {"keys": list(user.authorized_keys)}}
    if user.hashed_password_file is not None:
        out["hashedPasswordFile"] = user.hashed_password_file
    return out


def findings(ctx: HostContext) -> Iterator[Finding]:
    # The registry imports this module: read the declarations of every capability at run time.
    from kvmfleet.capabilities import SERVICE_USERS

    host = ctx.host
    for name, user in host.users.items():
        base = ("users", name)
        if name in SERVICE_USERS:
            yield error(
                base,
                f"{quote(name)} is a system user that NixOS or a service defines; choose another name",
            )
            continue
        if not user.authorized_keys and user.hashed_password_file is None:
            yield error(
                base,
                "needs authorized_keys or hashed_password_file: without either the user can "
                "never log in",
            )
        seen: set[str] = set()
        for index, group in enumerate(user.groups):
            if group in seen:
                yield error((*base, "groups", index), f"{quote(group)} is listed twice")
            seen.add(group)
        if "wheel" in user.groups and user.hashed_password_file is None:
            yield warning(
                (*base, "groups"),
                '"wheel" without hashed_password_file: sudo asks for a password this user '
                "does not have",
            )
    console = host.host.root_password_file is not None or any(
        u.hashed_password_file is not None for u in host.users.values()
    )
    if "laptop" in host.host.roles and not console:
        yield warning(
            ("users",),
            "nobody can log in at this laptop's keyboard: add a [users.<name>] table with "
            "hashed_password_file",
        )


def secret_files(ctx: HostContext) -> Iterator[SecretFile]:
    for name, user in ctx.host.users.items():
        if user.hashed_password_file is not None:
            yield SecretFile(
                ("users", name, "hashed_password_file"),
                user.hashed_password_file,
                f"NixOS's user activation ({name}'s hashedPasswordFile)",
                before_users=True,
            )


CAPABILITY = Capability("users", ("users",), settings, findings, secret_files=secret_files)
