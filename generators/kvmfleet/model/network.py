"""`[network]`: NICs named by permanent MAC, bonds with a fixed MAC, VLANs, bridges, addresses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import (
    DomainName,
    InterfaceAddress,
    InterfaceName,
    IpAddress,
    IpNetwork,
    MacAddress,
    Model,
)

BondMode = Literal[
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
]
HashPolicy = Literal["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"]
Mtu = Annotated[int, Field(ge=68, le=65535)]
Milliseconds = Annotated[int, Field(ge=0, le=3_600_000)]


class Route(Model):
    destination: IpNetwork = Field(description='Destination network, e.g. "10.2.0.0/16" or "::/0".')
    gateway: IpAddress | None = Field(
        default=None, description="Next hop; none for an on-link route."
    )
    metric: Annotated[int, Field(ge=0, le=4294967295)] | None = None


class Layer3(Model):
    """Addressing, shared by every kind of interface that can carry addresses."""

    addresses: list[InterfaceAddress] = Field(
        default=[], description='Static addresses, "10.0.10.21/24".'
    )
    gateways: list[IpAddress] = Field(
        default=[], description="Default gateways, at most one per family."
    )
    routes: list[Route] = Field(default=[], description="Static routes.")
    mtu: Mtu | None = Field(default=None, description="MTU in bytes.")
    dhcp: Literal["no", "ipv4", "ipv6", "yes"] = Field(
        default="no", description="DHCP client (servers: no)."
    )
    accept_ra: bool = Field(
        default=False, description="IPv6 router advertisements/SLAAC (servers: off)."
    )


class Bond(Layer3):
    slaves: list[InterfaceName] = Field(min_length=1, description="Links enslaved to the bond.")
    mode: BondMode = "802.3ad"
    lacp_rate: Literal["slow", "fast"] | None = Field(default=None, description="802.3ad only.")
    xmit_hash_policy: HashPolicy | None = Field(
        default=None, description="802.3ad, balance-xor, balance-tlb/alb."
    )
    miimon_ms: Milliseconds = Field(default=100, description="Link monitoring interval.")
    updelay_ms: Milliseconds | None = Field(default=None, description="Multiple of miimon_ms.")
    downdelay_ms: Milliseconds | None = Field(default=None, description="Multiple of miimon_ms.")
    min_links: Annotated[int, Field(ge=0)] | None = Field(default=None, description="802.3ad only.")
    primary: InterfaceName | None = Field(
        default=None, description="active-backup, balance-tlb/alb only."
    )
    hwaddress: MacAddress | None = Field(
        default=None, description="Fixed bond MAC; derived from host and bond name when omitted."
    )


class Vlan(Layer3):
    parent: InterfaceName
    id: Annotated[int, Field(ge=1, le=4094)]


class Bridge(Layer3):
    ports: list[InterfaceName] = Field(
        default=[], description="Links, bonds or VLANs enslaved to the bridge."
    )
    stp: bool = Field(default=False, description="Spanning tree protocol.")
    hwaddress: MacAddress | None = Field(
        default=None, description="Fixed bridge MAC; default: derived."
    )


class Interface(Layer3):
    """Addresses directly on a link (e.g. storage NICs)."""


class Network(Model):
    links: dict[InterfaceName, MacAddress] = Field(
        default={}, description="NIC name -> permanent MAC."
    )
    bonds: dict[InterfaceName, Bond] = Field(default={})
    vlans: dict[InterfaceName, Vlan] = Field(default={})
    bridges: dict[InterfaceName, Bridge] = Field(default={})
    interfaces: dict[InterfaceName, Interface] = Field(default={})
    dns: list[IpAddress] = Field(default=[], description="Name servers.")
    search: list[DomainName] = Field(default=[], description="DNS search domains.")
