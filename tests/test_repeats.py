"""Values listed twice in one array: compared as normalised, warned about once per repetition,
and left to a capability's own message where it has one."""

from __future__ import annotations

from pathlib import Path

from conftest import host_of, host_toml, run_cli
from kvmfleet.repeats import repeated_values


def _lines(text: str) -> list[str]:
    return [f"{'.'.join(map(str, f.path))}: {f.message}" for f in repeated_values(host_of(text))]


def test_repetitions_after_normalisation_are_warned_about() -> None:
    text = host_toml(
        network={"dns": ["2001:DB8::53", "10.0.10.53", "2001:db8:0::53"]},
        time={"servers": ["ntp1.example.net", "NTP1.example.net"]},
        packages={"extra": ["wget", "git"]},
    )
    assert sorted(_lines(text)) == [
        'network.dns.2: "2001:db8::53" is listed twice (also network.dns[0]): the second has no '
        "effect",
        'time.servers.1: "ntp1.example.net" is listed twice (also time.servers[0]): the second '
        "has no effect",
    ]


def test_distinct_values_and_a_valid_host_give_nothing() -> None:
    assert _lines(host_toml(packages={"extra": ["wget", "Wget"]})) == []


def test_a_capabilitys_own_message_is_not_repeated(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts" / "a"
    hosts.mkdir(parents=True)
    (hosts / "host.toml").write_text(
        host_toml(
            packages={"extra": ["git", "git"]},
            users={"alice": {"groups": ["wheel", "wheel"]}},
            ssh={},
        )
    )
    result = run_cli("check", root=tmp_path)
    assert result.code == 2
    assert 'users.alice.groups[1]: "wheel" is listed twice' in result.err
    assert 'users.alice.groups[1]: "wheel" is listed twice (also' not in result.err
    assert 'packages.extra[1]: "git" is listed twice (also packages.extra[0])' in result.err
