"""The cloudstack capability: GUID derivation, settings, findings and identities."""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import (
    REPO,
    copy_fleet,
    findings_of,
    fleet_settings,
    host_toml,
    identities_of,
    settings_of,
)
from kvmfleet.capabilities.cloudstack import java_host_address, management_server_guid

MS_KEY = (REPO / "hosts" / "site.toml").read_text().split('"ssh-rsa ', 1)[1].split('"', 1)[0]

CLOUDSTACK = {
    "version": "4.22",
    "management_servers": ["10.0.10.5", "mgmt.example.net"],
    "zone": "1",
    "pod": "2",
    "cluster": "3",
    "private_nic": "cloudbr0",
    "public_nic": "cloudbr0",
    "guest_nic": "cloudbr0",
}

BRIDGE = """
[network.links]
lan0 = "52:54:00:12:01:01"

[network.bridges.cloudbr0]
ports = ["lan0"]
addresses = ["2a00:f10:113:1::21/64", "10.0.10.21/24", "10.0.10.121/24"]
"""


def hypervisor(extra: str = BRIDGE, **cloudstack: Any) -> str:
    return host_toml(
        extra,
        host={"roles": ["hypervisor"]},
        firewall={"trusted_networks": ["10.0.10.0/24"]},
        cloudstack={**CLOUDSTACK, **cloudstack},
    )


def java_name_uuid(name: bytes) -> str:
    """java.util.UUID.nameUUIDFromBytes, transcribed from the JDK source."""
    md5 = bytearray(hashlib.md5(name).digest())
    md5[6] &= 0x0F
    md5[6] |= 0x30
    md5[8] &= 0x3F
    md5[8] |= 0x80
    return str(uuid.UUID(bytes=bytes(md5)))


def test_java_host_address_text() -> None:
    assert java_host_address("10.0.10.21") == "10.0.10.21"
    assert java_host_address("2a00:f10:113:1::21") == "2a00:f10:113:1:0:0:0:21"
    assert java_host_address("::1") == "0:0:0:0:0:0:0:1"
    assert java_host_address("2A00:0F10::0001") == "2a00:f10:0:0:0:0:0:1"


@given(st.ip_addresses())
def test_guid_is_javas_name_uuid_of_the_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    guid = management_server_guid(str(ip))
    assert guid == java_name_uuid(java_host_address(str(ip)).encode())
    parsed = uuid.UUID(guid)
    assert parsed.version == 3
    assert parsed.variant == uuid.RFC_4122


def test_agent_settings() -> None:
    settings = settings_of(hypervisor())
    agent = settings["services"]["cloudstack-agent"]
    assert agent == {
        "enable": True,
        "managementServers": ["10.0.10.5", "mgmt.example.net"],
        "port": 8250,
        "zone": "1",
        "pod": "2",
        "cluster": "3",
        # Add Host by the first IPv4 address of the private bridge
        "guid": management_server_guid("10.0.10.21"),
        "privateNic": "cloudbr0",
        "publicNic": "cloudbr0",
        "guestNic": "cloudbr0",
    }
    hv = settings["kvmfleet"]["hypervisor"]
    assert hv["libvirt"] == {
        "transport": "tls",
        "listenAddresses": ["2a00:f10:113:1::21", "10.0.10.21", "10.0.10.121"],
    }
    assert hv["vncListen"] == "10.0.10.21"
    assert hv["nestedVirtualisation"] is False
    assert "nfs" not in hv


def test_ports_only_through_the_trusted_networks() -> None:
    firewall = settings_of(hypervisor())["kvmfleet"]["firewall"]
    assert firewall["trustedNetworks"] == ["10.0.10.0/24"]
    assert firewall["trustedTCPPorts"] == [16514]
    assert firewall["trustedTCPPortRanges"] == [
        {"from": 5900, "to": 6100},
        {"from": 49152, "to": 49216},
    ]
    tcp = settings_of(hypervisor(libvirt_transport="tcp"))["kvmfleet"]["firewall"]
    assert 16509 in tcp["trustedTCPPorts"]
    assert 16514 not in tcp["trustedTCPPorts"]


def test_add_host_address_and_options() -> None:
    settings = settings_of(
        hypervisor(
            add_host_address="2a00:f10:113:1::21",
            nested_virtualization=True,
            nfs={"timeo": 100, "retrans": 1},
            port=9250,
        )
    )
    assert settings["services"]["cloudstack-agent"]["guid"] == management_server_guid(
        "2a00:f10:113:1::21"
    )
    assert settings["services"]["cloudstack-agent"]["port"] == 9250
    hv = settings["kvmfleet"]["hypervisor"]
    assert hv["vncListen"] == "2a00:f10:113:1::21"
    assert hv["nestedVirtualisation"] is True
    assert hv["nfs"] == {"timeo": 100, "retrans": 1}


def test_management_server_key_joins_roots_keys() -> None:
    key = f"ssh-rsa {MS_KEY}"
    keys = settings_of(hypervisor(ssh_authorized_keys=[key]))["users"]["users"]["root"]
    assert keys["openssh"]["authorizedKeys"]["keys"][-1] == key
    assert len(keys["openssh"]["authorizedKeys"]["keys"]) == 2


def test_demo_hypervisors_get_the_agent(tmp_path: Path) -> None:
    for name, address in (("kvm01", "10.0.10.21"), ("kvm02", "10.0.10.22")):
        settings = fleet_settings(REPO, name)
        agent = settings["services"]["cloudstack-agent"]
        assert agent["enable"] is True
        assert agent["publicNic"] == "cloudbr1"
        assert settings["kvmfleet"]["hypervisor"]["vncListen"] == address
        keys = settings["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"]
        assert any(k.endswith("cloud@mgmt01") for k in keys)
    assert "services" not in fleet_settings(REPO, "x1carbon") or (
        "cloudstack-agent" not in fleet_settings(REPO, "x1carbon")["services"]
    )


def test_given_guid_that_differs_is_warned_about() -> None:
    derived = management_server_guid("10.0.10.21")
    assert findings_of(hypervisor(guid=derived), "cloudstack") == []
    other = "6f1c8e52-9c1b-4f0e-8a7d-2b4e5f6a7c01"
    assert findings_of(hypervisor(guid=other), "cloudstack") == [
        "warning: cloudstack.guid: differs from the GUID the management server derives on Add "
        f'Host of "10.0.10.21" ({derived}): Add Host would wait for that GUID and fail. Keep guid '
        "only for a host CloudStack already holds under it (added at an earlier address: its "
        "record keeps that GUID and the agent reconnects with it); otherwise remove it"
    ]
    assert settings_of(hypervisor(guid=other))["services"]["cloudstack-agent"]["guid"] == other


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            host_toml(BRIDGE, host={"roles": ["hypervisor"]}),
            "host.roles: a hypervisor needs a [cloudstack] table (version, management_servers, "
            "zone, pod, cluster), in the host file or in site.toml's [roles.hypervisor.cloudstack]",
        ),
        (
            hypervisor(private_nic="lan0"),
            'cloudstack.private_nic: "lan0" is not a bridge defined under [network.bridges] '
            "(the agent plugs guests into bridges named after the zone's traffic labels)",
        ),
        (
            hypervisor(
                BRIDGE.replace(
                    'addresses = ["2a00:f10:113:1::21/64", "10.0.10.21/24", "10.0.10.121/24"]',
                    'dhcp = "ipv4"',
                )
            ),
            'cloudstack.private_nic: "cloudbr0" has no static address: the management server '
            "adds the host, and libvirt listens, on it",
        ),
        (
            hypervisor(add_host_address="10.0.10.99"),
            'cloudstack.add_host_address: "10.0.10.99" is not an address of "cloudbr0" '
            "(2a00:f10:113:1::21, 10.0.10.21, 10.0.10.121)",
        ),
        (
            hypervisor(libvirt_transport="tcp"),
            'warning: cloudstack.libvirt_transport: "tcp" is unauthenticated: anyone who reaches '
            'port 16509 controls every VM on this host; use "tls"',
        ),
        (
            host_toml(BRIDGE, host={"roles": ["hypervisor"]}, cloudstack=CLOUDSTACK),
            "warning: firewall.trusted_networks: is empty: SSH, libvirt, VNC and migration ports "
            "of this hypervisor are open to every network",
        ),
    ],
)
def test_findings(text: str, message: str) -> None:
    assert message in findings_of(text, "cloudstack")


def test_identity_is_the_effective_guid_in_lower_case() -> None:
    (derived,) = identities_of(hypervisor(), "cloudstack")
    assert derived.value == management_server_guid("10.0.10.21")
    assert derived.path == ("cloudstack", "guid")
    upper = "6F1C8E52-9C1B-4F0E-8A7D-2B4E5F6A7C01"
    (given_,) = identities_of(hypervisor(guid=upper.lower()), "cloudstack")
    assert given_.value == upper.lower()


# --- the VM test's inventory ---------------------------------------------------------------------

CHECKS = REPO / "checks" / "cloudstack-agent"


def test_vm_test_inventory_matches_the_test_network(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    """checks/cloudstack-agent.nix: hv is node 1 on the driver's vlan 1 (192.168.1.1, NIC MAC
    52:54:00:12:01:01), mgmt node 2 (trusted, the management server), outsider node 3 (not)."""
    root = copy_fleet(CHECKS, tmp_path / "cloudstack-agent")
    evaluated = nix_eval(root / "hosts" / "hv" / "generated.nix")
    agent = evaluated["services"]["cloudstack-agent"]
    assert agent["managementServers"] == ["192.168.1.2"]
    assert agent["guid"] == management_server_guid("192.168.1.1")
    assert evaluated["kvmfleet"]["hypervisor"]["libvirt"] == {
        "transport": "tls",
        "listenAddresses": ["192.168.1.1"],
    }
    assert evaluated["kvmfleet"]["firewall"]["trustedNetworks"] == ["192.168.1.2/32"]
    keys = evaluated["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"]
    assert any(key.endswith(" snakeoil") for key in keys)
