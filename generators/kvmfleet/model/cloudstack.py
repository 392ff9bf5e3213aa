"""`[cloudstack]`: the CloudStack KVM agent (translated by the cloudstack capability)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from kvmfleet.model.types import InterfaceName, Model, SshPublicKey, Uuid, parse_ip
from kvmfleet.problems import quote

_VERSION = re.compile(r"^4\.(20|22)(\.[0-9]+){0,2}\Z")


def _version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError(
            f'{quote(value)} is not a supported CloudStack release ("4.20" or "4.22", optionally with patch level)'
        )
    return value


_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


def _server(value: str) -> str:
    if _HOSTNAME.match(value):
        return value
    try:
        return str(parse_ip(value))
    except ValueError:
        raise ValueError(f"{quote(value)} is not a host name or IP address") from None


_ID = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")


def _id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"{quote(value)} is not a CloudStack id (a number or UUID)")
    return value


class CloudStack(Model):
    version: Annotated[str, AfterValidator(_version)]
    management_servers: list[Annotated[str, AfterValidator(_server)]] = Field(min_length=1)
    zone: Annotated[str, AfterValidator(_id)]
    pod: Annotated[str, AfterValidator(_id)]
    cluster: Annotated[str, AfterValidator(_id)]
    libvirt_transport: Literal["tls", "tcp"] = Field(
        default="tls",
        description='"tls" (16514, CloudStack CA) or "tcp" (16509, unauthenticated: warned).',
    )
    ssh_authorized_keys: list[SshPublicKey] = Field(
        default=[], description="Management server keys for Add Host."
    )
    guid: Uuid = Field(description="The agent's host GUID (unique in the fleet).")
    private_nic: InterfaceName = "cloudbr0"
    public_nic: InterfaceName = "cloudbr0"
    guest_nic: InterfaceName = "cloudbr0"
