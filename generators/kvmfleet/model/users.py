"""`[users.<name>]`: people who log in to a host besides root (users.users.<name>)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from kvmfleet.model.types import Model, SecretFile, SshPublicKey, constrained
from kvmfleet.problems import quote

# shadow's portable names, as NixOS requires them (< 32 characters): lower case, digits, '_',
# '-', not starting with a digit or '-' (an all-digit name would read as a uid).
_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}\Z")
# Users that NixOS itself defines on every host: an inventory user of that name would be merged
# into the system account (NixOS then refuses isNormalUser and isSystemUser together). The users
# of the capabilities' services are their `service_users` declarations, checked by the users
# capability.
_SYSTEM_USERS = frozenset(
    {
        "nobody",
        "sshd",
        "messagebus",
        "nscd",
        "polkituser",
        "rtkit",
        "avahi",
        "dhcpcd",
        "tss",
        "fwupd-refresh",
    }
)
_SYSTEM_PREFIXES = ("systemd-", "nixbld")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{quote(value)} is not a valid user or group name (at most 31 lower-case letters, "
            "digits, '_' and '-', starting with a letter or '_')"
        )
    return value


def _user_name(value: str) -> str:
    _name(value)
    if value == "root":
        raise ValueError(
            '"root" is not a [users] entry: its keys are [ssh] authorized_keys, its password '
            "host.root_password_file"
        )
    if value in _SYSTEM_USERS or value.startswith(_SYSTEM_PREFIXES):
        raise ValueError(
            f"{quote(value)} is a system user that NixOS or a service defines; choose another name"
        )
    return value


UserName = Annotated[str, constrained("user name", _user_name)]
GroupName = Annotated[str, constrained("group name", _name)]


class User(Model):
    """`[users.<name>]`: a normal user (isNormalUser, primary group "users") who logs in with SSH
    keys and/or, at the console, a password whose hash is in a file on the host."""

    authorized_keys: list[SshPublicKey] = Field(
        default=[], description="Public keys allowed to log in as this user by SSH."
    )
    hashed_password_file: SecretFile | None = Field(
        default=None,
        description="File on the host with the user's password hash (`mkpasswd`), for the "
        "console and sudo; SSH stays key-only. Never the password itself.",
    )
    groups: list[GroupName] = Field(
        default=[],
        description='Supplementary groups (extraGroups), e.g. "wheel" (sudo), "networkmanager".',
    )


Users = dict[UserName, User]
