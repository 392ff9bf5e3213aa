"""The whole host: one field per capability's table (adding a capability adds one line here)."""

from __future__ import annotations

from pydantic import Field

from kvmfleet.model.base import Boot, Firewall, HostSection, Packages, Ssh, Sysctls, Time
from kvmfleet.model.battery import Battery
from kvmfleet.model.ceph import Ceph
from kvmfleet.model.cloudstack import CloudStack
from kvmfleet.model.install import Deploy, Disk
from kvmfleet.model.network import Network
from kvmfleet.model.printing import Printing
from kvmfleet.model.quassel import Quassel
from kvmfleet.model.sops import Secrets
from kvmfleet.model.storage import Iscsi, Multipath
from kvmfleet.model.types import Model
from kvmfleet.model.users import Users


class Host(Model):
    """A host's merged inventory (site.toml, its roles, host.toml)."""

    host: HostSection = Field(description="Who the host is: roles, domain, time zone, release.")
    boot: Boot = Field(description="Boot loader and kernel.")
    disk: Disk = Field(description="The system disk.")
    ssh: Ssh = Field(default_factory=Ssh, description="How root logs in (SSH keys only).")
    packages: Packages = Field(default_factory=Packages, description="Extra packages.")
    sysctl: Sysctls = Field(
        default={}, description='Kernel parameters, e.g. "net.ipv4.tcp_retries2" = 8.'
    )
    firewall: Firewall = Field(
        default_factory=Firewall,
        description="Firewall and the networks trusted to manage the host.",
    )
    time: Time = Field(default_factory=Time, description="NTP servers.")
    users: Users = Field(default={}, description="People who log in besides root, by user name.")
    network: Network = Field(
        default_factory=Network,
        description="NICs, bonds, VLANs, bridges, addresses and routes (systemd-networkd).",
    )
    iscsi: Iscsi | None = Field(default=None, description="iSCSI initiator, ifaces and targets.")
    multipath: Multipath | None = Field(default=None, description="Multipath device settings.")
    ceph: Ceph | None = Field(default=None, description="Ceph client for RBD and CephFS.")
    cloudstack: CloudStack | None = Field(default=None, description="The CloudStack KVM agent.")
    battery: Battery | None = Field(default=None, description="ThinkPad charge thresholds.")
    printing: Printing | None = Field(default=None, description="CUPS printers (IPP, LPD, socket).")
    quassel: Quassel | None = Field(default=None, description="A Quassel IRC core.")
    deploy: Deploy = Field(default_factory=Deploy, description="How rollout tools reach the host.")
    secrets: Secrets = Field(
        default_factory=Secrets, description="Secret files from the host's sops file, or by hand."
    )
