"""`[iscsi]` and `[multipath]`: multipath iSCSI to a SAN, one session per storage NIC, combined by
dm-multipath (translated by capabilities/storage.py into services.openiscsi, services.iscsi-ifaces
and services.multipath)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import Endpoint, InterfaceName, IscsiName, Model, SecretFile, matching

# Written quoted into multipath.conf: no quotes, backslash line ends or control characters.
DeviceString = Annotated[
    str,
    matching(
        r"[\x20-\x21\x23-\x7e]{1,64}",
        "a vendor or product string (printable ASCII without '\"', at most 64 characters)",
        "vendor/product string",
    ),
]
Features = Annotated[
    str,
    matching(
        r"[0-9]+( [A-Za-z0-9_]+)*",
        'a device-mapper feature list ("<count> <feature> ...", e.g. "1 queue_if_no_path")',
        "feature list",
    ),
]
Wwid = Annotated[
    str,
    matching(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}",
        'a WWID (e.g. "3600508b1001c5e3c6a7f0d0e1f2a3b4c")',
        "WWID",
    ),
]

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
        default=[],
        description="iscsi.ifaces to log in through, one session each (default: all of them).",
    )
    target: IscsiName | None = Field(
        default=None, description="Only log in to this target (default: all discovered)."
    )
    chap_secret_file: SecretFile | None = Field(
        default=None,
        description=(
            "File with CHAP credentials for discovery and login, read on the host at run time: "
            '"username = ..." and "password = ..." lines (mutual CHAP: also username_in, '
            "password_in)."
        ),
    )


class Iscsi(Model):
    initiator_name: IscsiName = Field(
        description="This host's initiator IQN (unique in the fleet)."
    )
    ifaces: dict[IfaceId, IscsiIface] = Field(
        default={}, description="iSCSI ifaces by name, each bound to a network interface."
    )
    targets: list[IscsiTarget] = Field(default=[], description="Portals to discover and log in to.")
    replacement_timeout_s: Annotated[int, Field(ge=1, le=600)] = Field(
        default=15,
        description=(
            "node.session.timeo.replacement_timeout: seconds a broken session holds I/O before "
            "failing it to dm-multipath (open-iscsi's default, 120, stalls the failover)."
        ),
    )


class MultipathDevice(Model):
    vendor: DeviceString = Field(description="Vendor string the array reports (a regex).")
    product: DeviceString = Field(description="Product string the array reports (a regex).")
    path_grouping_policy: (
        Literal["failover", "multibus", "group_by_serial", "group_by_prio", "group_by_node_name"]
        | None
    ) = Field(default=None, description="multipath.conf path_grouping_policy.")
    path_selector: (
        Literal["round-robin 0", "queue-length 0", "service-time 0", "historical-service-time 0"]
        | None
    ) = Field(default=None, description="multipath.conf path_selector.")
    features: Features | None = Field(
        default=None,
        description=(
            'multipath.conf features, e.g. "1 queue_if_no_path" (deprecated: use no_path_retry).'
        ),
    )
    path_checker: (
        Literal[
            "tur", "readsector0", "emc_clariion", "hp_sw", "rdac", "directio", "cciss_tur", "none"
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "multipath.conf path_checker. Unset, the stanza still says tur: nixpkgs' "
            "services.multipath writes its option's default into every device stanza, so a "
            "built-in entry's checker is not kept (multipath-tools' own default is tur too)."
        ),
    )
    failback: Literal["immediate", "manual", "followover"] | Annotated[int, Field(ge=0)] | None = (
        Field(default=None, description="multipath.conf failback (a mode or seconds).")
    )
    rr_min_io_rq: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="multipath.conf rr_min_io_rq."
    )
    no_path_retry: Literal["fail", "queue"] | Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description=(
            'When every path is down: "queue" I/O until one is back, "fail" at once, or retry '
            "this many path checker intervals, then fail."
        ),
    )


class BlacklistDevice(Model):
    vendor: DeviceString = Field(description="Vendor (a regex).")
    product: DeviceString = Field(description="Product (a regex).")


class MultipathBlacklist(Model):
    wwids: list[Wwid] = Field(
        default=[],
        description=(
            "Local disks by WWID (`/lib/udev/scsi_id -g -u /dev/sdX`, or `multipath -v3`), "
            "never by kernel name."
        ),
    )
    devices: list[BlacklistDevice] = Field(
        default=[], description="Local controllers by vendor and product."
    )


class Multipath(Model):
    devices: list[MultipathDevice] = Field(default=[], description="Settings per storage array.")
    find_multipaths: Literal["yes", "strict", "greedy", "smart", "no"] = Field(
        default="yes",
        description=(
            '"yes": a map for every WWID seen on two paths (multipath-tools\' default, "strict", '
            "combines only WWIDs already in /etc/multipath/wwids)."
        ),
    )
    iscsi_only: bool = Field(
        default=True,
        description=(
            "Multipath iSCSI paths only (blacklist every other protocol): local disks stay out "
            "whatever their names."
        ),
    )
    blacklist: MultipathBlacklist = Field(
        default_factory=MultipathBlacklist, description="Devices multipath leaves alone."
    )
