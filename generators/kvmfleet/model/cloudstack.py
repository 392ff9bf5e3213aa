"""`[cloudstack]`: the CloudStack KVM agent (translated by the cloudstack capability)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.cloudstack_api import CloudStackApi, HostTags
from kvmfleet.model.types import (
    InterfaceName,
    Model,
    SshPublicKey,
    Uuid,
    constrained,
    matching,
    parse_ip,
)
from kvmfleet.problems import quote

CloudStackVersion = Annotated[
    str,
    matching(
        r"4\.(20|22)(\.[0-9]+){0,2}",
        'a supported CloudStack release ("4.20" or "4.22", optionally with patch level)',
        "CloudStack release",
    ),
]
CloudStackId = Annotated[
    str, matching(r"[A-Za-z0-9-]{1,64}", "a CloudStack id (a number or UUID)", "CloudStack id")
]

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


def _server(value: str) -> str:
    if _HOSTNAME.match(value):
        return value
    try:
        return str(parse_ip(value))
    except ValueError:
        raise ValueError(f"{quote(value)} is not a host name or IP address") from None


class CloudStack(Model):
    version: CloudStackVersion = Field(description="CloudStack release of the agent.")
    management_servers: list[Annotated[str, constrained("host name or IP", _server)]] = Field(
        min_length=1, description="Management servers the agent connects to."
    )
    zone: CloudStackId = Field(description="Zone the host is added to.")
    pod: CloudStackId = Field(description="Pod the host is added to.")
    cluster: CloudStackId = Field(description="Cluster the host is added to.")
    libvirt_transport: Literal["tls", "tcp"] = Field(
        default="tls",
        description='"tls" (16514, CloudStack CA) or "tcp" (16509, unauthenticated: warned).',
    )
    ssh_authorized_keys: list[SshPublicKey] = Field(
        default=[], description="Management server keys for Add Host."
    )
    guid: Uuid = Field(description="The agent's host GUID (unique in the fleet).")
    private_nic: InterfaceName = Field(
        default="cloudbr0", description="Bridge for management traffic."
    )
    public_nic: InterfaceName = Field(default="cloudbr0", description="Bridge for public traffic.")
    guest_nic: InterfaceName = Field(default="cloudbr0", description="Bridge for guest traffic.")
    host_tags: HostTags = Field(default=[], description="Host tags Add Host gives the host.")
    api: CloudStackApi | None = Field(
        default=None, description="The management server's API, for `kvmfleet cloudstack`."
    )
