"""Value types shared by the inventory models: each checks one kind of string and says what it expects."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kvmfleet.model.secrets import looks_like_token, secret_kind
from kvmfleet.model.sshkey import check_public_key
from kvmfleet.problems import quote


@dataclass(frozen=True)
class Constraint:
    """The validator of a constrained type, with `kind`: what it accepts in a few words (the
    inventory reference's type column). `check` returns the (normalised) value or raises
    ValueError with the one-line message the user sees."""

    kind: str
    check: Callable[[Any], Any]
    # Checks are pure: a value seen before (a site-wide DNS server, a monitor, a MAC pattern) is
    # not parsed again. Only results are kept, never errors.
    _seen: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __call__(self, value: Any) -> Any:
        key = (type(value), value)  # True == 1, but not for a check
        try:
            return self._seen[key]
        except KeyError:
            pass
        except TypeError:  # unhashable: nothing to remember
            return self.check(value)
        result = self.check(value)
        if len(self._seen) < _SEEN_LIMIT:
            self._seen[key] = result
        return result


_SEEN_LIMIT = 1 << 16


def constrained(kind: str, check: Callable[[Any], Any]) -> AfterValidator:
    """`Annotated[str, constrained("MAC address", _mac)]`: a type that checks and describes itself."""
    return AfterValidator(Constraint(kind, check))


@dataclass(frozen=True)
class Pattern:
    """Accepts strings that match `regex` in full; the error reads `"x" is not <what>`."""

    regex: str
    what: str

    def __call__(self, value: str) -> str:
        if not re.fullmatch(self.regex, value):
            raise ValueError(f"{quote(value)} is not {self.what}")
        return value


def matching(regex: str, what: str, kind: str) -> AfterValidator:
    return constrained(kind, Pattern(regex, what))


class Model(BaseModel):
    """Base of every inventory table: unknown keys are errors, TOML types are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- network identifiers -------------------------------------------------------------------------

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")


def _mac(value: str) -> str:
    mac = value.lower()
    if not _MAC.match(mac):
        raise ValueError(f"{quote(value)} is not a MAC address (six hex octets separated by ':')")
    return mac


MacAddress = Annotated[str, constrained("MAC address", _mac)]

# Linux accepts up to 15 bytes (IFNAMSIZ - 1) without '/', ':' or whitespace; we also keep names
# usable in sysctl paths and unit names.
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_RESERVED_IFNAMES = frozenset({"all", "default", "lo"})


def _ifname(value: str) -> str:
    if len(value) > 15:
        raise ValueError(
            f"{quote(value)} is not a valid interface name (at most 15 characters, has {len(value)})"
        )
    if not _IFNAME.match(value):
        raise ValueError(
            f"{quote(value)} is not a valid interface name "
            "(letters, digits, '-', '_', '.'; starting with a letter or digit)"
        )
    if value.isdigit():
        # systemd (ifname_valid_full) refuses all-digit names: they read as interface indexes.
        raise ValueError(
            f"{quote(value)} is not a valid interface name (it must not be all digits)"
        )
    if value in _RESERVED_IFNAMES:
        raise ValueError(f"{quote(value)} is reserved by the kernel and cannot name an interface")
    return value


InterfaceName = Annotated[str, constrained("interface name (≤ 15 chars)", _ifname)]


# Parsed once per run: the same addresses come back in every rule and from every host (site-wide
# name servers, gateways). ipaddress objects are immutable, so sharing them is safe.
ip_address = lru_cache(maxsize=1 << 16)(ipaddress.ip_address)
ip_interface = lru_cache(maxsize=1 << 16)(ipaddress.ip_interface)
ip_network = lru_cache(maxsize=1 << 16)(ipaddress.ip_network)


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP address without a zone id (`%eth0`): zone ids are host-local and end up verbatim in
    unit files."""
    if "%" in value:
        raise ValueError("zone ids (%...) are not allowed")
    try:
        return ip_address(value)
    except ValueError:
        # ipaddress repeats the whole value in its message; callers may pass the message on.
        raise ValueError(f"{quote(value)} is not an IP address") from None


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _unusable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address cannot be a host's or a peer's unicast address, if it cannot."""
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address (write the IPv4 address)"
    if isinstance(ip, ipaddress.IPv4Address) and ip == _BROADCAST:
        return "the broadcast address"
    return None


def link_local_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an IPv6 link-local address cannot name a server. IPv4 link-local servers are reached
    on the link without a zone (a cloud's time or name service at 169.254.169.x): as for name
    servers, they stay allowed."""
    if ip.version != 6 or not ip.is_link_local:
        return None
    return (
        "is an IPv6 link-local address: it is reachable only through a named interface (a "
        "zone, %eth0), which this setting cannot carry, and is not routed; give a global or "
        "unique local address"
    )


def refuse_credentials(value: str) -> None:
    """An address or host with `user:password@` (or `user@`) in it: refused without repeating the
    value, which may hold a password (terminals, CI logs, tickets keep what is printed)."""
    if "@" not in value:
        return
    userinfo = value.split("://", 1)[-1].rsplit("@", 1)[0]
    if ":" in userinfo:
        raise ValueError(
            "holds a user name and password (user:password@...; the value is not shown): "
            "credentials never go in the inventory; give the host alone"
        )
    raise ValueError(
        "holds a user name (user@...; the value is not shown): give the host or address alone"
    )


def without_credentials(value: str) -> str:
    """`refuse_credentials` as a check of its own, before a pattern that would quote the value."""
    refuse_credentials(value)
    return value


def _no_zone(value: str) -> None:
    if "%" in value:
        raise ValueError(
            f"{quote(value)}: zone ids (%...) are not allowed here; give the address alone"
        )


def _ip(value: str) -> str:
    refuse_credentials(value)
    _no_zone(value)
    try:
        ip = parse_ip(value)
    except ValueError:
        raise ValueError(f"{quote(value)} is not an IP address") from None
    why = _unusable(ip)
    if why:
        raise ValueError(f"{quote(value)} is {why}, not a unicast address")
    return str(ip)


IpAddress = Annotated[str, constrained("IP address", _ip)]


def _interface_address(value: str) -> str:
    refuse_credentials(value)
    if "/" not in value:
        raise ValueError(f'{quote(value)} needs a prefix length (e.g. "10.0.10.21/24")')
    _no_zone(value)
    try:
        iface = ip_interface(value)
    except ValueError:
        raise ValueError(
            f'{quote(value)} is not an address with prefix length (CIDR, e.g. "10.0.10.21/24")'
        ) from None
    why = _unusable(iface.ip) or ("a loopback address" if iface.ip.is_loopback else None)
    if why:
        raise ValueError(f"{quote(value)} is {why}: it cannot be an interface's address")
    net = iface.network
    if net.prefixlen == 0:
        raise ValueError(
            f"{quote(value)} has prefix length 0: every destination would be on this link"
        )
    if iface.version == 6 and net.prefixlen < 127 and iface.ip == net.network_address:
        # RFC 4291 2.6.1: every router on the link answers it; RFC 6164 exempts /127 links.
        raise ValueError(
            f"{quote(value)} is the subnet-router anycast address of {net}, not a host address"
        )
    if iface.version == 4 and net.prefixlen < 31:
        if iface.ip == net.network_address:
            raise ValueError(f"{quote(value)} is the network address of {net}, not a host address")
        if iface.ip == net.broadcast_address:
            raise ValueError(
                f"{quote(value)} is the broadcast address of {net}, not a host address"
            )
    return iface.with_prefixlen


InterfaceAddress = Annotated[str, constrained("address/prefix", _interface_address)]


def _network(value: str) -> str:
    refuse_credentials(value)
    _no_zone(value)
    try:
        net = ip_network(value, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ip_network(value, strict=False)
            raise ValueError(
                f"{quote(value)} has host bits set; did you mean {quote(str(fixed))}?"
            ) from None
        raise ValueError(
            f'{quote(value)} is not a network in CIDR notation (e.g. "10.0.10.0/24")'
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_IPV4_MAPPED):
        # Rules match the packet's family: an ip6 rule never sees IPv4 traffic.
        raise ValueError(
            f"{quote(value)} is an IPv4-mapped IPv6 network: it never matches IPv4 traffic; "
            "write the IPv4 network"
        )
    return str(net)


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

IpNetwork = Annotated[str, constrained("network (CIDR)", _network)]

# --- names -----------------------------------------------------------------------------------------

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def _domain(value: str) -> str:
    refuse_credentials(value)
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{quote(value)} is not a domain name (dot-separated labels of lower-case letters, digits and '-')"
        )
    if labels[-1].isdigit():
        # RFC 1123 2.1 / RFC 3696 2: a top-level label is never all-numeric, or names and IPv4
        # addresses could not be told apart.
        raise ValueError(
            f"{quote(value)} is not a domain name: it ends in an all-numeric label (an IP address?)"
        )
    return value


def _host_or_address(value: str) -> str:
    """A server's DNS name or IP address (IPv6 without brackets), never something in between, and
    never a link-local address (every use names a server: NTP, management, deployment)."""
    refuse_credentials(value)
    try:
        ip = parse_ip(value)
    except ValueError:
        pass
    else:
        why = _unusable(ip)
        if why:
            raise ValueError(f"{quote(value)} is {why}")
        local = link_local_reason(ip)
        if local:
            raise ValueError(f"{quote(value)} {local}")
        return str(ip)
    if re.fullmatch(r"[0-9.]+", value) or re.fullmatch(r"0[xX][0-9a-fA-F.]*", value):
        # inet_aton would read "010.0.10.5" as octal 8.0.10.5; resolvers differ: refuse it.
        raise ValueError(
            f"{quote(value)} looks like an IPv4 address but is not one "
            "(four decimal numbers 0-255 without leading zeros)"
        )
    try:
        return _domain(value.lower() if value.isascii() else value)
    except ValueError:
        raise ValueError(f"{quote(value)} is not a host name or IP address") from None


HostOrAddress = Annotated[str, constrained("host name or IP address", _host_or_address)]


def one_of(*choices: int) -> AfterValidator:
    """An integer from a fixed set. Use this, not `Literal[0, 1]`: a Literal of integers accepts
    `true` for 1 even in strict mode."""

    def check(value: int) -> int:
        if value not in choices:
            listed = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}"
            raise ValueError(f"{value} is not valid: expected {listed}")
        return value

    return constrained(" \\| ".join(map(str, choices)), check)


DomainName = Annotated[str, constrained("domain name", _domain)]


@cache
def _known_timezones() -> frozenset[str]:
    # The tzdata package (a dependency) makes this the same set on every machine.
    return frozenset(zoneinfo.available_timezones())


_TZ = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*\Z")


@cache
def _packaged_timezones() -> frozenset[str]:
    """The tzdata package's own list: a part of `available_timezones()` read without walking the
    system's tz directories (which costs more than validating a host)."""
    try:
        zones = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    except (ImportError, OSError, UnicodeDecodeError):
        return frozenset()
    return frozenset(line.strip() for line in zones.splitlines() if line.strip())


def _timezone(value: str) -> str:
    if _TZ.match(value) and value in _packaged_timezones():
        return value
    known = _known_timezones()
    # Without a tz database on this machine only the syntax can be checked.
    if not _TZ.match(value) or (known and value not in known):
        raise ValueError(
            f'{quote(value)} is not a time zone of the tz database (e.g. "Europe/Amsterdam", "UTC")'
        )
    return value


TimeZone = Annotated[str, constrained("tz database zone", _timezone)]

StateVersion = Annotated[
    str,
    matching(
        r"[0-9]{2}\.(05|11)",
        'a NixOS release (YY.05 or YY.11, e.g. "26.05")',
        "NixOS release (YY.05/YY.11)",
    ),
]

_ATTR = r"[A-Za-z_][A-Za-z0-9_'-]*"
PackageName = Annotated[
    str,
    matching(
        rf"{_ATTR}(\.{_ATTR})*",
        'a nixpkgs attribute name (e.g. "wget" or "python3Packages.requests")',
        "nixpkgs attribute",
    ),
]

SysctlName = Annotated[
    str,
    matching(
        r"[a-z][a-z0-9_]*(\.[A-Za-z0-9_:-]+)+",
        'a sysctl name (dotted, e.g. "net.ipv4.tcp_retries2")',
        "sysctl name",
    ),
]

# --- keys, paths and identifiers -------------------------------------------------------------------

SshPublicKey = Annotated[str, constrained("SSH public key", check_public_key)]


# Characters a path's consumers read as syntax, not as part of the name: every path of the
# inventory lands in at least one of fstab (mountpoints, devices), tmpfiles.d (state
# directories), unit files and their command lines (ExecStart=, LoadCredential=, mount units).
_INTERPRETED = {
    "%": "systemd and tmpfiles.d read % as a specifier (%h, %n, ...)",
    "\\": "fstab and systemd read a backslash as an escape (\\040 is a space)",
    '"': "tmpfiles.d and systemd command lines read quotes",
    "'": "tmpfiles.d and systemd command lines read quotes",
    "$": "systemd command lines expand $VARIABLES",
}


def interpreted_character(value: str) -> str | None:
    """Why a path cannot be passed on as it is, if it cannot: the first character its consumers
    would interpret, with the consumer."""
    for ch in value:
        if ch in _INTERPRETED:
            return f"contains {ch!r}: {_INTERPRETED[ch]}"
        if not ch.isprintable():
            return "contains a control or invisible character"
    return None


def _absolute_path(value: str) -> str:
    """An absolute, normalised path: no `//`, `.`, `..`, trailing `/` or whitespace, and no
    character its consumers (fstab, tmpfiles.d, systemd) would interpret."""
    if (
        not value.startswith("/")
        or value.startswith("//")
        or posixpath.normpath(value) != value
        or any(ch.isspace() for ch in value)
    ):
        raise ValueError(
            f"{quote(value)} is not an absolute, normalised path "
            '(no "//", ".", "..", trailing "/" or spaces)'
        )
    why = interpreted_character(value)
    if why:
        raise ValueError(f"{quote(value)} {why}; name the path without it")
    return value


def _secret_path(value: str) -> str:
    """A path to a secret file. The value is never repeated in a message: when someone pastes the
    secret itself here, the error must not copy it into terminals, CI logs and tickets."""
    kind = secret_kind(value) or ("a key or token" if looks_like_token(value) else None)
    if kind is not None:
        raise ValueError(
            f"looks like {kind}, not a path (the value is not shown): put the secret in a file "
            "on the host, provisioned out of band, and give that file's path"
        )
    try:
        _absolute_path(value)
    except ValueError:
        why = interpreted_character(value)
        raise ValueError(
            f"{why}; name the path without it (the value is not shown)"
            if why
            else "is not an absolute, normalised path to a file "
            '(no "//", ".", "..", trailing "/" or spaces; the value is not shown)'
        ) from None
    if value == "/":
        raise ValueError("is a directory, not a file")
    if value.startswith("/nix/store/"):
        raise ValueError(
            "is in the Nix store, which is world-readable: secrets must live outside it"
        )
    return value


SecretFile = Annotated[str, constrained("path to a secret file (outside /nix/store)", _secret_path)]


AbsolutePath = Annotated[str, constrained("absolute path", _absolute_path)]


def _uuid(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError(
            f'{quote(value)} is not a UUID (e.g. "6f1c8e52-9c1b-4f0e-8a7d-2b4e5f6a7c01")'
        ) from None
    if str(parsed) != value.lower():
        raise ValueError(f"{quote(value)} is not a UUID in canonical form ({parsed})")
    return str(parsed)


Uuid = Annotated[str, constrained("UUID", _uuid)]

# RFC 3720: iqn.YYYY-MM.reversed.domain[:anything] (lower case), or eui./naa. hex forms (either case;
# names compare case-insensitively, as fleet.py compares identities).
_IQN = re.compile(
    r"^(iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[a-z0-9.:_-]+)?|eui\.[0-9a-fA-F]{16}|naa\.([0-9a-fA-F]{16}|[0-9a-fA-F]{32}))\Z"
)


def _iqn(value: str) -> str:
    if len(value) > 223 or not _IQN.match(value):
        raise ValueError(
            f"{quote(value)} is not an iSCSI name (iqn.YYYY-MM.reversed.domain:identifier, lower case, "
            'e.g. "iqn.2026-11.net.example:kvm01")'
        )
    return value


IscsiName = Annotated[str, constrained("iSCSI name (IQN)", _iqn)]


@lru_cache(maxsize=1 << 16)  # pure: portals and monitors are the same for many hosts
def split_host_port(value: str) -> tuple[str, int | None]:
    """`10.0.0.1`, `10.0.0.1:3260`, `[2001:db8::1]`, `[2001:db8::1]:3260` -> (address, port)."""
    port: int | None = None
    host = value
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError("unterminated '['")
        host, rest = value[1:close], value[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected ':port' after ']'")
            port = _port(rest[1:])
        if parse_ip(host).version != 6:
            raise ValueError("brackets are for IPv6 addresses")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _port(port_text)
    elif value.count(":") > 1:
        # the example is the value itself, bracketed: this parser serves iSCSI portals and Ceph
        # monitors alike, so a fixed example would name the other protocol's port
        address, _, last = value.rpartition(":")
        raise ValueError(
            f"an IPv6 address with a port needs brackets: {quote(f'[{address}]:{last}')}"
        )
    ip = parse_ip(host)
    why = _unusable(ip)
    if why:
        raise ValueError(f"{host} is {why}")
    local = link_local_reason(ip)
    if local:
        raise ValueError(f"{host} {local}")
    return str(ip), port


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"{quote(text)} is not a port (1-65535)")
    return int(text)


def _endpoint(value: str) -> str:
    refuse_credentials(value)
    try:
        split_host_port(value)
    except ValueError as exc:
        raise ValueError(
            f'{quote(value)} is not an address with optional port ("10.1.0.100:3260" or "[2001:db8::1]:3260"): {exc}'
        ) from None
    return value


Endpoint = Annotated[str, constrained("address[:port]", _endpoint)]

Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[int, Field(ge=0, le=100)]
