"""`[cloudstack]`: the CloudStack KVM agent on a hypervisor (translated by the cloudstack
capability into services.cloudstack-agent and kvmfleet.hypervisor)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.cloudstack_api import CloudStackApi, HostTags
from kvmfleet.model.types import (
    HostOrAddress,
    InterfaceName,
    IpAddress,
    Model,
    SshPublicKey,
    Uuid,
    matching,
)

# The agent package is 4.22.1.1 (the fix for CVE-2026-50112); the management servers must run the
# same release series.
CloudStackVersion = Annotated[
    str,
    matching(
        r"4\.22(\.[1-9][0-9]*(\.[0-9]+)?)?",
        'a supported CloudStack release: "4.22", or 4.22.1 and later patch levels '
        "(the agent is 4.22.1.1)",
        "CloudStack release",
    ),
]
CloudStackId = Annotated[
    str, matching(r"[A-Za-z0-9-]{1,64}", "a CloudStack id (a number or UUID)", "CloudStack id")
]


class NfsClient(Model):
    """`[cloudstack.nfs]`: defaults for the NFS mounts the agent makes (primary and secondary
    storage), written to /etc/nfsmount.conf. A mount option given in CloudStack (a primary
    storage's "NFS mount options") wins over these."""

    timeo: Annotated[int, Field(ge=1, le=6000)] | None = Field(
        default=None,
        description=(
            "NFS `timeo` in tenths of a second (kernel default 600). The kernel sets the "
            "connection's TCP_USER_TIMEOUT to timeo * (retrans + 1), which bounds how long a "
            "TCP connection to a failed server hangs (net.ipv4.tcp_retries2 does not apply)."
        ),
    )
    retrans: Annotated[int, Field(ge=0, le=10)] | None = Field(
        default=None,
        description="NFS `retrans`: retries before a major timeout (kernel default 2).",
    )


class CloudStack(Model):
    """`[cloudstack]`: the host's place in CloudStack and the agent's settings."""

    version: CloudStackVersion = Field(
        description="The CloudStack release of the management servers."
    )
    management_servers: list[HostOrAddress] = Field(
        min_length=1, description="Management servers (addresses or host names) the agent uses."
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=8250, description="The management servers' agent port."
    )
    zone: CloudStackId = Field(description="Zone id (agent.properties `zone`).")
    pod: CloudStackId = Field(description="Pod id (agent.properties `pod`).")
    cluster: CloudStackId = Field(
        description="Cluster id; NixOS hosts go in clusters of their own (CloudStack requires one "
        "host OS per cluster)."
    )
    libvirt_transport: Literal["tls", "tcp"] = Field(
        default="tls",
        description='"tls" (16514, CloudStack CA) or "tcp" (16509, unauthenticated: warned).',
    )
    ssh_authorized_keys: list[SshPublicKey] = Field(
        default=[], description="Management server keys for Add Host (added to root's keys)."
    )
    add_host_address: IpAddress | None = Field(
        default=None,
        description=(
            "The address to enter in Add Host: one of private_nic's addresses "
            "(default: its first IPv4 address, else its first address)."
        ),
    )
    guid: Uuid | None = Field(
        default=None,
        description=(
            "The agent's host GUID, unique in the fleet. Default: the one the management server "
            "derives from add_host_address on Add Host. A different value makes Add Host fail "
            "(warned about); it is right only for a host CloudStack already holds under it, "
            "added at an earlier address."
        ),
    )
    private_nic: InterfaceName = Field(
        default="cloudbr0",
        description="Bridge for management traffic, with the host's management address(es).",
    )
    public_nic: InterfaceName = Field(default="cloudbr0", description="Bridge for public traffic.")
    guest_nic: InterfaceName = Field(default="cloudbr0", description="Bridge for guest traffic.")
    nested_virtualization: bool = Field(
        default=False, description="Let guests use KVM themselves (kvm_intel/kvm_amd nested=1)."
    )
    nfs: NfsClient = Field(
        default_factory=NfsClient, description="NFS client defaults for storage mounts."
    )
    host_tags: HostTags = Field(default=[], description="Host tags Add Host gives the host.")
    api: CloudStackApi | None = Field(
        default=None, description="The management server's API, for `kvmfleet cloudstack`."
    )
