"""Constrained value types: what each accepts and how it says no."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import ValidationError

from kvmfleet.model.types import (
    DomainName,
    HostOrAddress,
    InterfaceAddress,
    IpNetwork,
    Model,
    SecretFile,
    one_of,
)


class _Sample(Model):
    address: InterfaceAddress | None = None
    network: IpNetwork | None = None
    domain: DomainName | None = None
    server: HostOrAddress | None = None
    choice: Annotated[int, one_of(0, 1, 2)] | None = None


def _error(**values: object) -> str:
    with pytest.raises(ValidationError) as exc:
        _Sample.model_validate(values)
    (error,) = exc.value.errors()
    return str(error["msg"]).removeprefix("Value error, ")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2001:db8::5", "needs a prefix length"),
        ("2001:db8::/64", "subnet-router anycast address of 2001:db8::/64"),
        ("2001:db8::0/64", "subnet-router anycast address of 2001:db8::/64"),
        ("2001:db8:1::/48", "subnet-router anycast address"),
        ("10.0.0.0/24", "network address of 10.0.0.0/24"),
    ],
)
def test_network_addresses_are_not_host_addresses(value: str, why: str) -> None:
    assert why in _error(address=value)


def test_a_127_link_may_use_both_addresses() -> None:
    assert _Sample(address="2001:db8::/127").address == "2001:db8::/127"
    assert _Sample(address="2001:db8::1/64").address == "2001:db8::1/64"


def test_ipv4_mapped_networks_are_refused() -> None:
    assert "IPv4-mapped IPv6 network" in _error(network="::ffff:10.0.0.0/104")
    assert _Sample(network="2001:db8::/32").network == "2001:db8::/32"


@pytest.mark.parametrize("value", ["10.0.10.5", "1.2.3.4", "example.123"])
def test_a_domain_is_not_an_address(value: str) -> None:
    assert "all-numeric label" in _error(domain=value)


@pytest.mark.parametrize("value", ["010.0.10.5", "10.0.10", "4294967295", "0x0a.0.0.1", "1.2.3.4."])
def test_numbers_that_are_not_addresses_are_not_host_names(value: str) -> None:
    assert "looks like an IPv4 address but is not one" in _error(server=value)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("mgmt01.example.net", "mgmt01.example.net"),
        ("10.0.10.5", "10.0.10.5"),
        ("2001:DB8::5", "2001:db8::5"),
    ],
)
def test_host_names_and_addresses(value: str, kept: str) -> None:
    assert _Sample(server=value).server == kept


def test_a_boolean_is_not_one_of_the_numbers() -> None:
    assert "Input should be a valid integer" in _error(choice=True)
    assert "3 is not valid: expected 0, 1 or 2" in _error(choice=3)
    assert _Sample(choice=1).choice == 1


class _Secrets(Model):
    path: SecretFile


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("AQAA8VNlAAAAABAAAAECAwQFBgcICQoLDA0ODw==", "a Ceph key"),
        (
            "$y$j9T$F5Jx5fExrKuJdnPKVnjm8.$8gJyMdfbWLBpFc3qYvn3mSXKcwBQ0ZLV1RnF5oiUsX9",
            "a password hash",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "a private key"),
        ("5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592", "a key or token"),
    ],
)
def test_a_secret_in_a_secret_path_key_is_named_never_repeated(value: str, kind: str) -> None:
    with pytest.raises(ValidationError) as exc:
        _Secrets(path=value)
    message = str(exc.value.errors()[0]["msg"])
    assert f"looks like {kind}, not a path (the value is not shown)" in message
    assert value not in str(exc.value).replace(f"input_value='{value}'", "")


def test_bad_secret_paths_are_not_repeated_either() -> None:
    for value in ("relative/ceph.keyring", "/nix/store/abc-keyring", "/"):
        with pytest.raises(ValidationError) as exc:
            _Secrets(path=value)
        assert value not in str(exc.value.errors()[0]["msg"])
