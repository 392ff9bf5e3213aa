"""Checks on raw values: secrets by name only where a setting is named, secrets by shape anywhere."""

from __future__ import annotations

import tomllib

from conftest import host_toml
from kvmfleet.hygiene import content_findings


def _findings(text: str) -> list[str]:
    return [
        f"{'.'.join(map(str, f.path))}: {f.message}"
        for f in content_findings(tomllib.loads(text), ())
    ]


def test_names_the_user_chose_are_never_secrets() -> None:
    text = host_toml(
        network={
            "links": {"key": "52:54:00:12:01:01", "token": "52:54:00:12:01:02"},
            "interfaces": {"key": {"addresses": ["10.0.0.2/24"]}},
        },
        sysctl={"net.ipv4.tcp_keepalive_time": 60},
    )
    assert _findings(text) == []


def test_a_setting_named_like_a_secret_is_one() -> None:
    text = host_toml(host={"password": "hunter2"}, extra='[network.links.eth0]\nsecret = "x"\n')
    assert _findings(text) == [
        "host.password: looks like a secret: secrets never go in the inventory; provision a file "
        "on the host and give its path in the matching *_file key",
        "network.links.eth0.secret: looks like a secret: secrets never go in the inventory; "
        "provision a file on the host and give its path in the matching *_file key",
    ]


def test_a_password_hash_anywhere_is_refused_without_repeating_it() -> None:
    hashed = "$6$rounds=5000$saltsalt$Jv1q8w0eYbRzq9bQm2cD0yqkMj1uXw8kq8h2bD0n5cE0Y7m0n9r8aHq0"
    (finding,) = _findings(host_toml(packages={"extra": [hashed]}))
    assert finding.startswith("packages.extra.0: looks like a password hash: ")
    assert hashed not in finding
