"""`[iscsi]` and `[multipath]`: multipath iSCSI to a SAN (translated by the storage capability)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import Endpoint, InterfaceName, IscsiName, Model, SecretFile, matching

IfaceId = Annotated[
    str,
    matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "an iSCSI iface name (letters, digits, '-', '_', '.')",
        "iSCSI iface name",
    ),
]


class IscsiIface(Model):
    interface: InterfaceName = Field(
        description="Network interface the sessions of this iface use."
    )


class IscsiTarget(Model):
    portal: Endpoint = Field(
        description='Discovery portal, "address[:port]" (port 3260 by default).'
    )
    ifaces: list[IfaceId] = Field(
        default=[], description="iscsi.ifaces to log in through (one session each)."
    )
    target: IscsiName | None = Field(
        default=None, description="Only log in to this target (default: all discovered)."
    )
    chap_secret_file: SecretFile | None = Field(
        default=None, description="File holding CHAP credentials."
    )


class Iscsi(Model):
    initiator_name: IscsiName = Field(
        description="This host's initiator IQN (unique in the fleet)."
    )
    ifaces: dict[IfaceId, IscsiIface] = Field(
        default={}, description="iSCSI ifaces by name, each bound to a network interface."
    )
    targets: list[IscsiTarget] = Field(default=[], description="Portals to discover and log in to.")


class MultipathDevice(Model):
    vendor: str = Field(min_length=1, description="Vendor string the array reports.")
    product: str = Field(min_length=1, description="Product string the array reports.")
    path_grouping_policy: (
        Literal["failover", "multibus", "group_by_serial", "group_by_prio", "group_by_node_name"]
        | None
    ) = Field(default=None, description="multipath.conf path_grouping_policy.")
    path_selector: (
        Literal["round-robin 0", "queue-length 0", "service-time 0", "historical-service-time 0"]
        | None
    ) = Field(default=None, description="multipath.conf path_selector.")
    features: str | None = Field(default=None, description="multipath.conf features.")
    path_checker: (
        Literal[
            "tur", "readsector0", "emc_clariion", "hp_sw", "rdac", "directio", "cciss_tur", "none"
        ]
        | None
    ) = Field(default=None, description="multipath.conf path_checker.")
    failback: Literal["immediate", "manual", "followover"] | Annotated[int, Field(ge=0)] | None = (
        Field(default=None, description="multipath.conf failback (a mode or seconds).")
    )
    rr_min_io_rq: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="multipath.conf rr_min_io_rq."
    )
    no_path_retry: Literal["fail", "queue"] | Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="multipath.conf no_path_retry (a mode or retries)."
    )


class Multipath(Model):
    devices: list[MultipathDevice] = Field(default=[], description="Settings per storage array.")
