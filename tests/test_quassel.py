"""The quassel capability: `[quassel]` -> services.quassel, its port through kvmfleet.firewall."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, findings_of, fleet_settings, host_toml, settings_of

CERT = "/var/lib/secrets/quassel/quasselCert.pem"


def test_demo_core_listens_on_both_families_behind_the_trusted_networks() -> None:
    s = fleet_settings(REPO, "kvm02")
    assert s["services"]["quassel"] == {
        "enable": True,
        "interfaces": ["::", "0.0.0.0"],
        "portNumber": 4242,
        "dataDir": "/var/lib/quassel",
        "requireSSL": True,
        "certificateFile": CERT,
    }
    assert 4242 in s["kvmfleet"]["firewall"]["trustedTCPPorts"]
    assert s["kvmfleet"]["firewall"]["trustedNetworks"]


def test_demo_core_round_trips_through_nix(nix_eval: Callable[[Path], Any]) -> None:
    evaluated = nix_eval(REPO / "hosts" / "kvm02" / "generated.nix")
    assert evaluated["services"]["quassel"] == fleet_settings(REPO, "kvm02")["services"]["quassel"]


def test_loopback_only_core_opens_no_port() -> None:
    text = host_toml(quassel={"listen": ["::1", "127.0.0.1"], "port": 4243})
    s = settings_of(text)
    assert s["services"]["quassel"]["interfaces"] == ["::1", "127.0.0.1"]
    assert 4243 not in s["kvmfleet"]["firewall"].get("trustedTCPPorts", [])
    assert findings_of(text, "quassel") == [
        "warning: quassel: no certificate_file: clients log in and chat without TLS"
    ]


def test_addresses_are_normalised() -> None:
    s = settings_of(host_toml(quassel={"listen": ["2001:DB8:0::5"], "certificate_file": CERT}))
    assert s["services"]["quassel"]["interfaces"] == ["2001:db8::5"]


def test_one_address_per_family_tls_and_open_port() -> None:
    text = host_toml(quassel={"listen": ["::", "2001:db8::5", "0.0.0.0"], "require_ssl": True})
    assert findings_of(text, "quassel") == [
        'quassel.listen.1: "2001:db8::5": quasselcore listens on one IPv6 address only, already "::"',
        "quassel.require_ssl: needs certificate_file",
        "warning: quassel: no certificate_file: clients log in and chat without TLS",
        "warning: quassel.port: 4242 is open to every network: set firewall.trusted_networks",
    ]


def test_empty_listen_and_store_data_dir() -> None:
    text = host_toml(quassel={"listen": [], "certificate_file": CERT, "data_dir": "/nix/store/x"})
    assert findings_of(text, "quassel") == [
        "quassel.listen: is empty: the core would accept no client",
        'quassel.data_dir: "/nix/store/x" is not a writable state directory',
    ]


@pytest.mark.parametrize(
    "data_dir",
    [
        "/etc",
        "/root",
        "/home",
        "/var/lib",
        "/var",
        "/home/alice",
        "/run/quassel",
        "/usr/x",
        "/var/lib/nixos",
    ],
)
def test_a_shared_or_system_data_dir_is_an_error(data_dir: str) -> None:
    # tmpfiles' `d` line would hand the directory to the quassel user (owner and mode 0755).
    text = host_toml(quassel={"certificate_file": CERT, "data_dir": data_dir})
    assert findings_of(text, "quassel") == [
        f'quassel.data_dir: "{data_dir}" is a system or shared directory: the quassel service '
        "would own it (systemd-tmpfiles sets its owner and mode 0755 at every boot); give the "
        'core a directory of its own, e.g. "/var/lib/quassel"',
        "warning: quassel.port: 4242 is open to every network: set firewall.trusted_networks",
    ]


@pytest.mark.parametrize("data_dir", ["/var/lib/quassel", "/srv/quassel", "/home/alice/quassel"])
def test_a_directory_of_its_own_is_fine(data_dir: str) -> None:
    text = host_toml(quassel={"certificate_file": CERT, "data_dir": data_dir})
    assert not any("data_dir" in f for f in findings_of(text, "quassel"))
