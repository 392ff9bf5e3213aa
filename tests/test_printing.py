"""The printing capability: `[printing]` -> services.printing and hardware.printers, device URIs,
validation of hosts, protocol/model/queue combinations, names and the default printer."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import REPO, findings_of, fleet_settings, host_toml, settings_of
from kvmfleet.model.printing import Printer

NO_DRIVER = (
    'printers need a driver\'s model (`lpinfo -m`); driverless "everywhere" is for ipp/ipps only'
)


def _printers(*printers: str, extra: str = "") -> str:
    return host_toml(extra + "".join(f"[[printing.printers]]\n{p}\n" for p in printers))


def _uri(**fields: Any) -> str:
    return Printer.model_validate({"name": "p", **fields}).device_uri()


@pytest.mark.parametrize(
    ("fields", "uri"),
    [
        # an AAAA (or A) name goes into the URI as it is; CUPS resolves it
        (
            {"host": "canon.lab.example.net", "protocol": "lpd", "queue": "lp"},
            "lpd://canon.lab.example.net/lp",
        ),
        ({"host": "Printer.Example.NET."}, "ipp://printer.example.net/ipp/print"),
        # IPv6 literals in brackets, compressed; ports after the bracket
        ({"host": "2a00:f10:113:1:0::40"}, "ipp://[2a00:f10:113:1::40]/ipp/print"),
        (
            {"host": "2001:db8::5", "protocol": "ipps", "port": 8443, "queue": "printers/a4"},
            "ipps://[2001:db8::5]:8443/printers/a4",
        ),
        ({"host": "2001:db8::5", "protocol": "socket"}, "socket://[2001:db8::5]"),
        (
            {"host": "2001:db8::5", "protocol": "socket", "port": 9101},
            "socket://[2001:db8::5]:9101",
        ),
        (
            {"host": "10.0.10.40", "protocol": "lpd", "port": 515, "queue": "raw"},
            "lpd://10.0.10.40:515/raw",
        ),
    ],
)
def test_device_uris(fields: dict[str, Any], uri: str) -> None:
    assert _uri(**fields) == uri


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("[2001:db8::5]", '"[2001:db8::5]": write the IPv6 address without brackets'),
        ("[2001:db8::5]:631", '"[2001:db8::5]:631": write the IPv6 address without brackets'),
        ("printer.example.net:631", '"printer.example.net:631" is not an IP address (put a port'),
        ("fe80::1%eth0", '"fe80::1%eth0": zone ids (%...) are not allowed'),
        ("fe80::1", '"fe80::1" is an IPv6 link-local address'),
        ("printer_1.example.net", '"printer_1.example.net" is not a host name or an IP address'),
        ("", '"" is not a host name or an IP address'),
    ],
)
def test_bad_hosts(host: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        Printer.model_validate({"name": "p", "host": host})
    assert message in str(err.value)


def test_demo_laptop_printers() -> None:
    s = fleet_settings(REPO, "x1carbon")
    assert s["hardware"]["printers"] == {
        "ensurePrinters": [
            {
                "name": "canon",
                "deviceUri": "lpd://canon.lab.example.net/lp",
                "model": "drv:///sample.drv/generic.ppd",
                "location": "Lab",
            },
            {
                "name": "office",
                "deviceUri": "ipp://[2a00:f10:113:1::40]/ipp/print",
                "model": "everywhere",
            },
        ],
        "ensureDefaultPrinter": "canon",
    }
    # no browsing of the whole network unless asked
    assert s["services"]["printing"] == {
        "enable": True,
        "browsing": False,
        "browsed": {"enable": False},
    }
    assert "avahi" not in s["services"]
    assert s["kvmfleet"]["printing"] == {
        "drivers": [],
        "retryUnreachable": True,
        "removeUndeclared": False,
    }


def test_demo_laptop_printers_round_trip_through_nix(nix_eval: Callable[[Path], Any]) -> None:
    evaluated = nix_eval(REPO / "hosts" / "x1carbon" / "generated.nix")
    assert (
        evaluated["hardware"]["printers"]
        == fleet_settings(REPO, "x1carbon")["hardware"]["printers"]
    )


def test_browsing_and_drivers_when_asked() -> None:
    text = _printers(
        'name = "photo"\nhost = "photo.example.net"\nmodel = "gutenprint.5.3://bjc-PIXMA-iP4200/expert"',
        extra='[printing]\nbrowse = true\ndrivers = ["gutenprint"]\nremove_undeclared = true\n',
    )
    s = settings_of(text)
    assert s["services"]["printing"]["browsing"] is True
    assert s["services"]["avahi"] == {"enable": True, "nssmdns4": True}
    assert s["kvmfleet"]["printing"]["drivers"] == ["gutenprint"]
    assert s["kvmfleet"]["printing"]["removeUndeclared"] is True
    assert findings_of(text, "printing") == []


def test_driver_model_without_driver_package_warns() -> None:
    text = _printers(
        'name = "photo"\nhost = "photo.example.net"\nmodel = "gutenprint.5.3://x/expert"'
    )
    assert findings_of(text, "printing") == [
        'warning: printing.drivers: a printer\'s model comes from a driver package: list it here (e.g. "gutenprint")'
    ]


def test_combinations_names_and_defaults() -> None:
    text = _printers(
        'name = "a"\nhost = "a.example.net"\nprotocol = "lpd"\ndefault = true',
        'name = "A"\nhost = "b.example.net"\nprotocol = "socket"\nqueue = "x"\nmodel = "everywhere"\ndefault = true',
    )
    assert findings_of(text, "printing") == [
        f"printing.printers.0.model: lpd {NO_DRIVER}",
        'printing.printers.0.queue: lpd printers need the queue name (e.g. "lp")',
        f"printing.printers.1.model: socket {NO_DRIVER}",
        "printing.printers.1.queue: socket (AppSocket/JetDirect) printers have no queue",
        'printing.printers.1.name: "A" is already the name of printing.printers[0] (CUPS ignores case)',
        "printing.printers.1.default: printing.printers[0] is already the default printer",
    ]


def test_no_printing_table_no_cups() -> None:
    assert "printing" not in settings_of(host_toml()).get("services", {})


@given(
    st.one_of(st.ip_addresses().map(str), st.text(max_size=30)), st.none() | st.integers(1, 65535)
)
def test_any_host_gives_a_uri_naming_it_or_a_message(host: str, port: int | None) -> None:
    try:
        printer = Printer.model_validate({"name": "p", "host": host, "port": port})
    except ValidationError as err:
        assert err.error_count() == 1
        return
    parts = urllib.parse.urlsplit(printer.device_uri())
    assert parts.scheme == "ipp"
    assert parts.hostname == printer.host
    assert parts.port == port
    assert parts.path == "/ipp/print"


def test_another_protocols_port_is_warned_about() -> None:
    text = _printers(
        'name = "a"\nhost = "a.example.net"\nport = 515',
        'name = "b"\nhost = "b.example.net"\nprotocol = "lpd"\nqueue = "lp"\n'
        'model = "drv:///sample.drv/generic.ppd"\nport = 9100',
        'name = "c"\nhost = "c.example.net"\nport = 8631',
    )
    assert findings_of(text, "printing") == [
        "warning: printing.printers.0.port: 515 is the lpd port, but the protocol is ipp: "
        "is one of them wrong?",
        "warning: printing.printers.1.port: 9100 is the socket port, but the protocol is lpd: "
        "is one of them wrong?",
    ]
