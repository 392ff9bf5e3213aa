"""`[quassel]`: a Quassel IRC core (services.quassel)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kvmfleet.model.types import (
    AbsolutePath,
    Model,
    Port,
    SecretFile,
    constrained,
    parse_ip,
    refuse_credentials,
)
from kvmfleet.problems import quote


def _listen_address(value: str) -> str:
    """An address quasselcore can bind: unicast, loopback or the wildcard of one family."""
    refuse_credentials(value)
    try:
        ip = parse_ip(value)
    except ValueError:
        raise ValueError(
            f'{quote(value)} is not an IP address to listen on (e.g. "::", "0.0.0.0", "2001:db8::5")'
        ) from None
    if ip.is_multicast:
        raise ValueError(f"{quote(value)} is a multicast address")
    if ip.version == 6 and ip.is_link_local:
        raise ValueError(f"{quote(value)} is link-local: quasselcore cannot bind it without a zone")
    return str(ip)


ListenAddress = Annotated[str, constrained("IP address to listen on", _listen_address)]


class Quassel(Model):
    listen: list[ListenAddress] = Field(
        default=["::", "0.0.0.0"],
        description="Addresses the core listens on, at most one per family; the default is every "
        'address of both ("::" binds IPv6 only, "0.0.0.0" IPv4).',
    )
    port: Port = Field(default=4242, description="TCP port for Quassel clients.")
    certificate_file: SecretFile | None = Field(
        default=None,
        description="One PEM file with the TLS certificate and its private key, readable by the "
        "quassel user, provisioned outside the Nix store.",
    )
    require_ssl: bool = Field(
        default=False, description="Refuse clients without TLS (needs certificate_file)."
    )
    data_dir: AbsolutePath = Field(
        default="/var/lib/quassel",
        description="Configuration and SQLite database (services.quassel.dataDir).",
    )
