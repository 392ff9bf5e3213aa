"""CUPS printers (`[printing]`) -> services.printing and hardware.printers.ensurePrinters, with
modules/printing.nix retrying printers that are away (a roaming laptop) and drivers by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kvmfleet.capability import Capability, HostContext, Peer, PortUse, Settings
from kvmfleet.problems import Finding, error, quote, warning

# Each protocol's well-known port: another protocol's port is most likely a mix-up.
_PORTS = {"ipp": 631, "ipps": 631, "lpd": 515, "socket": 9100}
# Models CUPS itself provides; any other model comes from a driver package.
_BUILTIN_MODELS = ("everywhere", "drv:///sample.drv/")


def settings(ctx: HostContext) -> Settings:
    printing = ctx.host.printing
    if printing is None:
        return {}
    printers: list[dict[str, Any]] = []
    for printer in printing.printers:
        entry: dict[str, Any] = {
            "name": printer.name,
            "deviceUri": printer.device_uri(),
            "model": printer.cups_model(),
        }
        if printer.location is not None:
            entry["location"] = printer.location
        if printer.description is not None:
            entry["description"] = printer.description
        printers.append(entry)
    out: Settings = {
        "services": {
            "printing": {
                "enable": True,
                "browsing": printing.browse,
                "browsed": {"enable": printing.browse},
            }
        },
        "kvmfleet": {
            "printing": {
                "drivers": list(printing.drivers),
                "retryUnreachable": True,
                "removeUndeclared": printing.remove_undeclared,
            }
        },
    }
    if printing.browse:
        out["services"]["avahi"] = {"enable": True, "nssmdns4": True}
    if printers:
        out["hardware"] = {"printers": {"ensurePrinters": printers}}
        defaults = [p.name for p in printing.printers if p.default]
        if defaults:
            out["hardware"]["printers"]["ensureDefaultPrinter"] = defaults[0]
    return out


def findings(ctx: HostContext) -> Iterator[Finding]:
    printing = ctx.host.printing
    if printing is None:
        return
    seen: dict[str, int] = {}
    default: int | None = None
    needs_driver = False
    for index, printer in enumerate(printing.printers):
        here = ("printing", "printers", index)
        model = printer.cups_model()
        if printer.protocol in ("lpd", "socket"):
            if printer.model is None or model == "everywhere":
                yield error(
                    (*here, "model"),
                    f"{printer.protocol} printers need a driver's model (`lpinfo -m`); "
                    'driverless "everywhere" is for ipp/ipps only',
                )
            if printer.protocol == "socket" and printer.queue is not None:
                yield error((*here, "queue"), "socket (AppSocket/JetDirect) printers have no queue")
            if printer.protocol == "lpd" and printer.queue is None:
                yield error((*here, "queue"), 'lpd printers need the queue name (e.g. "lp")')
        if printer.port is not None and printer.port != _PORTS[printer.protocol]:
            others = sorted({p for p, port in _PORTS.items() if port == printer.port})
            if others:
                yield warning(
                    (*here, "port"),
                    f"{printer.port} is the {'/'.join(others)} port, but the protocol is "
                    f"{printer.protocol}: is one of them wrong?",
                )
        if not model.startswith(_BUILTIN_MODELS):
            needs_driver = True
        key = printer.name.lower()  # CUPS queue names ignore case
        if key in seen:
            yield error(
                (*here, "name"),
                f"{quote(printer.name)} is already the name of printing.printers[{seen[key]}] "
                "(CUPS ignores case)",
            )
        seen.setdefault(key, index)
        if printer.default:
            if default is not None:
                yield error(
                    (*here, "default"),
                    f"printing.printers[{default}] is already the default printer",
                )
            default = index if default is None else default
    if needs_driver and not printing.drivers:
        yield warning(
            ("printing", "drivers"),
            'a printer\'s model comes from a driver package: list it here (e.g. "gutenprint")',
        )


def peers(ctx: HostContext) -> Iterator[Peer]:
    printing = ctx.host.printing
    if printing is None:
        return
    for index, printer in enumerate(printing.printers):
        # Fleet hosts print through CUPS; none is a printer, this one included.
        yield Peer("printer", printer.host, ("printing", "printers", index, "host"), itself=True)


def ports(ctx: HostContext) -> Iterator[PortUse]:
    printing = ctx.host.printing
    if printing is None:
        return
    # services.printing's listenAddresses default, "localhost:631": cupsd binds both loopbacks.
    yield PortUse("cupsd", "tcp", 631, 631, ("127.0.0.1", "::1"), ("printing",))
    if printing.browse:
        # avahi-daemon's mDNS socket, on every address.
        yield PortUse("avahi-daemon", "udp", 5353, 5353, ("0.0.0.0", "::"), ("printing", "browse"))


def pitfalls(layer: Mapping[str, Any]) -> Iterator[Finding]:
    table = layer.get("printing")
    if isinstance(table, dict) and isinstance(table.get("printers"), dict):
        yield error(
            ("printing", "printers"),
            "is a list: write each entry as [[printing.printers]] (two brackets), not as a table",
        )


CAPABILITY = Capability(
    "printing",
    ("printing",),
    settings,
    findings,
    pitfalls=pitfalls,
    peers=peers,
    service_users=frozenset({"cups"}),
    ports=ports,
)
