"""One check per host over every capability's `ports` declarations: no two services take one
port (TCP and UDP apart), and a service listens only where the host has an address."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capability import HostContext, PortUse
from kvmfleet.model.types import ip_address
from kvmfleet.problems import Finding, error, format_keypath, quote

WILDCARDS = frozenset({"0.0.0.0", "::"})


def _every_address(use: PortUse) -> bool:
    return any(a in WILDCARDS for a in use.addresses)


def _overlap(a: PortUse, b: PortUse) -> bool:
    if a.protocol != b.protocol or a.last < b.first or b.last < a.first:
        return False
    # A wildcard socket (dual-stack for "::" unless the service says otherwise) takes the port on
    # every address: counted as overlapping everything, which is what bind() reports in doubt.
    return _every_address(a) or _every_address(b) or bool(set(a.addresses) & set(b.addresses))


def _ports(use: PortUse) -> str:
    kind = use.protocol.upper()
    return (
        f"{kind} port {use.first}"
        if use.first == use.last
        else f"{kind} ports {use.first}-{use.last}"
    )


def _where(use: PortUse) -> str:
    if _every_address(use):
        return "every address"
    return ", ".join(use.addresses)


def port_findings(ctx: HostContext) -> Iterator[Finding]:
    # The registry imports the capabilities, which import this module's neighbours: read it late.
    from kvmfleet.capabilities import REGISTRY
    from kvmfleet.capabilities.network.addresses import own_addresses

    uses = [use for cap in REGISTRY for use in cap.ports(ctx)]
    for index, use in enumerate(uses):
        for earlier in uses[:index]:
            if _overlap(use, earlier):
                where = format_keypath(earlier.path)
                yield error(
                    use.path,
                    f"{_ports(use)} of {use.service} ({_where(use)}) is already taken by "
                    f"{earlier.service} ({_ports(earlier)} on {_where(earlier)}"
                    + (f", from {where}" if where else "")
                    + "): one of them could not start; choose another port",
                )
                break
    own = own_addresses(ctx.host.network)
    for use in uses:
        if use.listen_path is None or own.dynamic:
            continue  # an address from DHCP or RA may be the host's: not knowable here
        for position, address in enumerate(use.addresses):
            if address in WILDCARDS or address in own.static or _loopback(address):
                continue
            yield error(
                (*use.listen_path, position),
                f"{quote(address)} is not an address of this host (none of [network]'s "
                f"addresses): {use.service} could not listen on it",
            )


def _loopback(address: str) -> bool:
    return ip_address(address).is_loopback
