"""`[network]`: NICs named by permanent MAC, bonds with a fixed MAC, VLANs, bridges, addresses.

Translated by capabilities/network/ into systemd-networkd units; docs/network.md is the reference
of every key. Checks that involve more than one key (slaves exist, gateways are reachable, bond
options fit the mode, ...) live in the capability's `findings`, not here.
"""

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
# The values systemd.netdev(5) TransmitHashPolicy= takes in the pinned nixpkgs (its unit check
# rejects "vlan+srcmac", which newer kernels know).
HashPolicy = Literal["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"]
Mtu = Annotated[int, Field(ge=68, le=65535)]
Milliseconds = Annotated[int, Field(ge=0, le=3_600_000)]
Dhcp = Literal["no", "ipv4", "ipv6", "yes"]


class Route(Model):
    """A static route through this interface (one `[[...routes]]` entry or inline table)."""

    destination: IpNetwork = Field(description='Destination network, e.g. "10.2.0.0/16" or "::/0".')
    gateway: IpAddress | None = Field(
        default=None,
        description="Next hop, in a subnet of this interface (or IPv6 link-local); none: on-link.",
    )
    metric: Annotated[int, Field(ge=0, le=4294967295)] | None = Field(
        default=None, description="Route metric (lower wins); networkd's default when omitted."
    )


class Layer3(Model):
    """Addressing and link settings, shared by every kind of interface that can carry addresses."""

    addresses: list[InterfaceAddress] = Field(
        default=[],
        description='Static addresses with prefix length, "10.0.10.21/24", "2001:db8::21/64".',
    )
    gateways: list[IpAddress] = Field(
        default=[],
        description="Default gateways, at most one per address family; each in a subnet of `addresses`.",
    )
    routes: list[Route] = Field(default=[], description="Static routes.")
    mtu: Mtu | None = Field(default=None, description="MTU in bytes (default: kernel's, 1500).")
    dhcp: Dhcp = Field(
        default="no", description='DHCP client: "no" (servers), "ipv4", "ipv6" or "yes" (both).'
    )
    accept_ra: bool = Field(
        default=False,
        description="Accept IPv6 router advertisements (SLAAC, RA routes); off on servers.",
    )


class Bond(Layer3):
    """`[network.bonds.<name>]`: a bond of links, always with a fixed MAC."""

    slaves: list[InterfaceName] = Field(
        min_length=1, description="Links (from [network.links]) enslaved to the bond."
    )
    mode: BondMode = Field(default="802.3ad", description="Bonding mode.")
    lacp_rate: Literal["slow", "fast"] | None = Field(
        default=None, description='802.3ad only: LACPDU rate asked of the partner (kernel: "slow").'
    )
    xmit_hash_policy: HashPolicy | None = Field(
        default=None,
        description='802.3ad, balance-xor, balance-tlb, balance-alb: slave selection (kernel: "layer2").',
    )
    miimon_ms: Milliseconds = Field(
        default=100, description="Link monitoring interval; 0 turns link monitoring off."
    )
    updelay_ms: Milliseconds | None = Field(
        default=None,
        description="Wait before using a slave whose link came up; a multiple of miimon_ms.",
    )
    downdelay_ms: Milliseconds | None = Field(
        default=None,
        description="Wait before dropping a slave whose link went down; a multiple of miimon_ms.",
    )
    min_links: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="802.3ad only: links that must be up for the bond to have carrier.",
    )
    primary: InterfaceName | None = Field(
        default=None, description="active-backup, balance-tlb, balance-alb only: preferred slave."
    )
    hwaddress: MacAddress | None = Field(
        default=None,
        description="Fixed bond MAC (unicast, preferably locally administered); derived from host "
        "and bond name when omitted.",
    )


class Vlan(Layer3):
    """`[network.vlans.<name>]`: an 802.1Q VLAN interface on a link, bond, bridge or VLAN."""

    parent: InterfaceName = Field(description="The link, bond, bridge or VLAN carrying the tags.")
    id: Annotated[int, Field(ge=1, le=4094)] = Field(description="VLAN id, 1-4094.")


class Bridge(Layer3):
    """`[network.bridges.<name>]`: a Linux bridge (e.g. CloudStack's cloudbr0), with a fixed MAC."""

    ports: list[InterfaceName] = Field(
        default=[], description="Links, bonds or VLANs enslaved to the bridge."
    )
    stp: bool = Field(default=False, description="Spanning tree protocol.")
    hwaddress: MacAddress | None = Field(
        default=None,
        description="Fixed bridge MAC; when omitted, that of its first port that is a bond with a "
        "fixed hwaddress, else derived from host and bridge name.",
    )


class Interface(Layer3):
    """`[network.interfaces.<link>]`: addresses and MTU directly on a link (e.g. storage NICs)."""


class Network(Model):
    """`[network]`: interfaces, addresses and DNS; without any interface table: DHCP everywhere.

    A host without links, bonds, VLANs, bridges and interfaces gets systemd-networkd with NixOS's
    defaults: DHCP on every Ethernet interface and Wi-Fi station."""

    links: dict[InterfaceName, MacAddress] = Field(
        default={}, description="NIC name -> permanent MAC address; the NIC is renamed to the name."
    )
    bonds: dict[InterfaceName, Bond] = Field(default={}, description="Bonds by name.")
    vlans: dict[InterfaceName, Vlan] = Field(default={}, description="VLAN interfaces by name.")
    bridges: dict[InterfaceName, Bridge] = Field(default={}, description="Bridges by name.")
    interfaces: dict[InterfaceName, Interface] = Field(
        default={}, description="Addresses and MTU of links (by their name in [network.links])."
    )
    dns: list[IpAddress] = Field(default=[], description="Name servers (networking.nameservers).")
    search: list[DomainName] = Field(
        default=[], description="DNS search domains (networking.search)."
    )

    def declares_interfaces(self) -> bool:
        """Whether the host's networking is declared (else: DHCP everywhere)."""
        return bool(self.links or self.bonds or self.vlans or self.bridges or self.interfaces)
