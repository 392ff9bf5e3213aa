"""`[users.<name>]`: normal users with SSH keys, a password hash file and groups; never a password,
never root or a system user."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conftest import REPO, SSH_KEY, findings_of, fleet_settings, host_of, host_toml, settings_of

ALICE = {"alice": {"authorized_keys": [SSH_KEY], "groups": ["wheel"]}}


def _users(**users: dict[str, object]) -> str:
    text = host_toml()
    for name, table in users.items():
        text += f"\n[users.{name}]\n"
        for key, value in table.items():
            rendered = (
                "[" + ", ".join(f'"{v}"' for v in value) + "]"
                if isinstance(value, list)
                else f'"{value}"'
            )
            text += f"{key} = {rendered}\n"
    return text


def test_a_user_becomes_a_normal_user_with_keys_password_file_and_groups() -> None:
    text = _users(
        alice={
            "authorized_keys": [SSH_KEY],
            "hashed_password_file": "/var/lib/secrets/alice.hash",
            "groups": ["wheel", "libvirtd"],
        },
        bob={"hashed_password_file": "/var/lib/secrets/bob.hash"},
    )
    users = settings_of(text)["users"]["users"]
    assert users["alice"] == {
        "isNormalUser": True,
        "extraGroups": ["wheel", "libvirtd"],
        "openssh": {"authorizedKeys": {"keys": [SSH_KEY]}},
        "hashedPasswordFile": "/var/lib/secrets/alice.hash",
    }
    assert users["bob"] == {
        "isNormalUser": True,
        "hashedPasswordFile": "/var/lib/secrets/bob.hash",
    }
    # root keeps its keys from [ssh]: the users' settings merge with the base capability's
    assert users["root"]["openssh"]["authorizedKeys"]["keys"] == [SSH_KEY]
    assert findings_of(text, "users") == []


def test_no_users_no_settings() -> None:
    assert set(settings_of(host_toml())["users"]["users"]) == {"root"}
    assert set(fleet_settings(REPO, "kvm01")["users"]["users"]) == {"root"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("root", '"root" is not a [users] entry: its keys are [ssh] authorized_keys'),
        ("sshd", '"sshd" is a system user that NixOS or a service defines'),
        ("systemd-network", "is a system user"),
        ("nixbld1", "is a system user"),
        ("Alice", "is not a valid user or group name"),
        ("1000", "is not a valid user or group name"),
        ("-x", "is not a valid user or group name"),
        ("a" * 32, "is not a valid user or group name"),
    ],
)
def test_user_names_are_portable_and_not_root_or_system_users(name: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        host_of(_users(**{f'"{name}"': {"authorized_keys": [SSH_KEY]}}))


def test_a_31_character_name_is_fine() -> None:
    assert "a" * 31 in host_of(_users(**{"a" * 31: {"authorized_keys": [SSH_KEY]}})).users


def test_group_names_are_checked_and_listed_once() -> None:
    with pytest.raises(ValidationError, match="is not a valid user or group name"):
        host_of(_users(alice={"authorized_keys": [SSH_KEY], "groups": ["Wheel Group"]}))
    text = _users(alice={"authorized_keys": [SSH_KEY], "groups": ["video", "video"]})
    assert findings_of(text, "users") == ['users.alice.groups.1: "video" is listed twice']


def test_a_user_who_can_never_log_in_is_an_error() -> None:
    text = _users(alice={"groups": ["video"]})
    assert findings_of(text, "users") == [
        "users.alice: needs authorized_keys or hashed_password_file: without either the user "
        "can never log in"
    ]


def test_wheel_without_a_password_is_warned_about() -> None:
    assert findings_of(_users(**ALICE), "users") == [
        'warning: users.alice.groups: "wheel" without hashed_password_file: sudo asks for a '
        "password this user does not have"
    ]


def test_the_password_file_is_a_path_outside_the_store() -> None:
    with pytest.raises(ValidationError, match="Nix store"):
        host_of(_users(alice={"hashed_password_file": "/nix/store/abc-alice.hash"}))
    with pytest.raises(ValidationError):
        host_of(_users(alice={"hashed_password_file": "alice.hash"}))


def test_a_laptop_without_a_console_login_is_warned_about() -> None:
    laptop = host_toml(host={"roles": ["laptop"]})
    assert findings_of(laptop, "users") == [
        "warning: users: nobody can log in at this laptop's keyboard: add a [users.<name>] table "
        "with hashed_password_file"
    ]
    with_user = laptop + '\n[users.alice]\nhashed_password_file = "/var/lib/secrets/alice.hash"\n'
    assert findings_of(with_user, "users") == []
    with_root = host_toml(
        host={"roles": ["laptop"], "root_password_file": "/var/lib/secrets/root.hash"}
    )
    assert findings_of(with_root, "users") == []
    assert findings_of(host_toml(), "users") == []
