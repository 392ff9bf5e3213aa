"""`[printing]`: CUPS printers declared for NixOS's services.printing / hardware.printers."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field

from kvmfleet.model.types import (
    Model,
    PackageName,
    Port,
    constrained,
    link_local_reason,
    matching,
    parse_ip,
    refuse_credentials,
    without_credentials,
)
from kvmfleet.problems import quote

_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def _printer_host(value: str) -> str:
    """A DNS name (resolved by CUPS, AAAA records included) or an IP address, without brackets
    or port: the URI is built from the protocol, host and port."""
    refuse_credentials(value)
    if value.startswith("[") or "]" in value:
        raise ValueError(f"{quote(value)}: write the IPv6 address without brackets")
    if "%" in value:
        raise ValueError(f"{quote(value)}: zone ids (%...) are not allowed")
    if ":" in value or value.replace(".", "").isdigit():
        try:
            ip = parse_ip(value)
        except ValueError:
            raise ValueError(
                f"{quote(value)} is not an IP address (put a port in `port`, not in `host`)"
            ) from None
        if ip.is_unspecified or ip.is_multicast:
            raise ValueError(f"{quote(value)} is not a unicast address a printer can have")
        local = link_local_reason(ip)
        if local:
            raise ValueError(f"{quote(value)} {local}")
        if ip.is_link_local:
            raise ValueError(
                f"{quote(value)} is a self-assigned link-local address: it changes and is not "
                "routed; give the printer a fixed address or use its DNS name"
            )
        return str(ip)
    labels = value.rstrip(".").split(".") if value != "." else [""]
    if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{quote(value)} is not a host name or an IP address")
    return value.rstrip(".").lower()


PrinterHost = Annotated[str, constrained("host name or IP address", _printer_host)]

# CUPS queue names, by lpadmin's validate_name (systemv/lpadmin.c): no control characters, space,
# DEL, '/', '\\', '?', "'", '"' or '#', and '@' ends the name (the rest names a server); fewer
# than 128 bytes. NixOS's printerName type adds printable, and ensureDefaultPrinter quotes the
# name in '...' for the shell. Kept to ASCII: names are typed on every client.
_CUPS_REFUSED = "\"#'/?@\\"
_CUPS_NAME = (
    "["
    + "".join(re.escape(chr(c)) for c in range(0x21, 0x7F) if chr(c) not in _CUPS_REFUSED)
    + "]{1,127}"
)
PrinterName = Annotated[
    str,
    matching(
        _CUPS_NAME,
        "a CUPS queue name (lpadmin's rule: printable ASCII without spaces, / \\ ? ' \" # or @, "
        "at most 127 characters)",
        "CUPS queue name",
    ),
]
QueuePath = Annotated[
    str,
    constrained("queue path", without_credentials),
    matching(
        r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*",
        'a queue or resource path on the printer (e.g. "ipp/print" or "lp")',
        "queue path",
    ),
]
PrinterModel = Annotated[
    str,
    matching(
        r"[!-~]{1,255}",
        'a CUPS model (`lpinfo -m`, e.g. "everywhere" or "drv:///sample.drv/generic.ppd")',
        "CUPS model",
    ),
]


class Printer(Model):
    name: PrinterName = Field(description="The CUPS queue name (`lp -d NAME`).")
    host: PrinterHost = Field(
        description="The printer's DNS name (AAAA/A records) or IP address, without brackets."
    )
    protocol: Literal["ipp", "ipps", "lpd", "socket"] = Field(
        default="ipp", description="How CUPS reaches the printer."
    )
    port: Port | None = Field(
        default=None, description="The printer's port, when not the protocol's default."
    )
    queue: QueuePath | None = Field(
        default=None,
        description='ipp/ipps: resource path (default "ipp/print"); lpd: the queue name '
        "(must be given); socket: none.",
    )
    model: PrinterModel | None = Field(
        default=None,
        description='"everywhere" (driverless, ipp/ipps only, the default there; the printer is '
        "asked for its capabilities when the queue is created) or a model from `lpinfo -m`, "
        "needed for lpd and socket.",
    )
    default: bool = Field(default=False, description="The default printer (at most one).")
    location: str | None = Field(default=None, description="Where the printer stands.")
    description: str | None = Field(default=None, description="A human-readable description.")

    def device_uri(self) -> str:
        """The CUPS device URI: IPv6 literals in brackets, the port only when given."""
        host = self.host
        if ":" in host:
            host = f"[{ipaddress.IPv6Address(host)}]"
        authority = host if self.port is None else f"{host}:{self.port}"
        if self.protocol == "socket":
            return f"socket://{authority}"
        if self.protocol == "lpd":
            return f"lpd://{authority}/{self.queue or ''}"
        return f"{self.protocol}://{authority}/{self.queue or 'ipp/print'}"

    def cups_model(self) -> str:
        return self.model or "everywhere"


class Printing(Model):
    printers: list[Printer] = Field(default=[], description="The CUPS queues to set up.")
    drivers: list[PackageName] = Field(
        default=[],
        description='Driver packages for the printers\' models (nixpkgs attributes, e.g. "gutenprint").',
    )
    browse: bool = Field(
        default=False,
        description="Find and share printers on the local network (DNS-SD through Avahi).",
    )
    remove_undeclared: bool = Field(
        default=False,
        description="Delete CUPS queues not listed here, also ones added by hand.",
    )
