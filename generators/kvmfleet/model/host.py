"""The whole host: one field per capability's table (adding a capability adds one line here)."""

from __future__ import annotations

from pydantic import Field

from kvmfleet.model.base import Boot, Disk, Firewall, HostSection, Packages, Ssh, Sysctls
from kvmfleet.model.battery import Battery
from kvmfleet.model.ceph import Ceph
from kvmfleet.model.cloudstack import CloudStack
from kvmfleet.model.iscsi import Iscsi, Multipath
from kvmfleet.model.network import Network
from kvmfleet.model.types import Model


class Host(Model):
    """A host's merged inventory (site.toml, its roles, host.toml)."""

    host: HostSection
    boot: Boot
    disk: Disk
    ssh: Ssh = Field(default_factory=Ssh)
    packages: Packages = Field(default_factory=Packages)
    sysctl: Sysctls = Field(
        default={}, description='Kernel parameters, e.g. "net.ipv4.tcp_retries2" = 8.'
    )
    firewall: Firewall = Field(default_factory=Firewall)
    network: Network = Field(default_factory=Network)
    iscsi: Iscsi | None = None
    multipath: Multipath | None = None
    ceph: Ceph | None = None
    cloudstack: CloudStack | None = None
    battery: Battery | None = None
