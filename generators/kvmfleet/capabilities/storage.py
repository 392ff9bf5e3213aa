"""Multipath iSCSI (`[iscsi]`, `[multipath]`): one iSCSI session per storage NIC, combined by
dm-multipath.

NixOS settings:
- `services.openiscsi` (iscsid, the initiator name) and `services.iscsi-ifaces`
  (modules/iscsi-ifaces.nix: ifaces bound to the NICs, discovery, session settings, login at boot,
  degraded rather than failed with a path missing, logout at shutdown, reload on `switch` without
  logging out);
- `services.multipath`: the inventory's device stanzas, `find_multipaths`, a blacklist (every
  non-iSCSI path, local disks by WWID, local controllers); modules/multipath.nix starts multipathd
  at boot, installs multipath-tools' udev rules and fixes its multipathd-queueing unit;
- storage NICs in one subnet (one portal IP, as an EqualLogic group has): ARP replies and
  announcements from the NIC that owns the address (`arp_ignore = 1`, `arp_announce = 2`, per NIC
  and `all`), the firewall's reverse-path check exempts those NICs, and each NIC answers from its
  own link: a routing policy rule per address (`from <address> lookup <table>`) and a table per NIC
  holding only the shared subnet on that NIC (SAN_TABLE_BASE). Two NICs in two subnets need none
  of this.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from kvmfleet.capabilities.network import UNIT_PREFIX, interface_names
from kvmfleet.capabilities.network.topology import layer3_of, topology
from kvmfleet.capability import (
    Capability,
    HostContext,
    Identity,
    Peer,
    Renew,
    SecretFile,
    Settings,
)
from kvmfleet.model.storage import Iscsi, IscsiTarget, Multipath, MultipathDevice
from kvmfleet.model.types import ip_address, ip_interface, split_host_port
from kvmfleet.problems import Finding, error, warning

DEFAULT_PORT = 3260
# ARP flux: with two NICs in one subnet, either NIC answers ARP for both addresses (arp_ignore 0)
# and announces whichever source it likes (arp_announce 0), so the SAN sends one session's
# traffic to the other NIC. 1/2: answer and announce only for the NIC's own address.
ARP_SYSCTLS = {"arp_ignore": 1, "arp_announce": 2}
# Kernel path selector modules (dm-multipath loads them on demand; listed so they are in the system).
SELECTOR_MODULES = {
    "round-robin 0": "dm-round-robin",
    "queue-length 0": "dm-queue-length",
    "service-time 0": "dm-service-time",
    "historical-service-time 0": "dm-historical-service-time",
}
# multipath-tools' built-in hardware entries that set no_path_retry (libmultipath/hwtable.c), for
# the queue_if_no_path warning: no_path_retry wins over that feature.
BUILTIN_NO_PATH_RETRY = {("EQLOGIC", "100E-00"): "30"}
# open-iscsi's built-in ifaces (usr/iface.c): not stored in /etc/iscsi/ifaces, not bindable.
BUILTIN_IFACES = frozenset({"default", "iser"})
# The identity kind of a host's own IQN.
INITIATOR_NAME = "iSCSI initiator name"
# Storage NICs in one subnet: the n-th of them (1-based, by interface name) gets routing table
# SAN_TABLE_BASE + n and its rules that priority (before the main table's rule at 32766; networkd
# and the kernel use no table or priority in this range by themselves).
SAN_TABLE_BASE = 1000
KERNEL_NAME = re.compile(r"(sd|vd|hd|xvd|nvme|mmcblk|dm-)[a-z0-9]*")


# --- shared facts ----------------------------------------------------------------------------------


def portal(text: str) -> str:
    """`address:port` as iscsiadm writes it: IPv6 in brackets, port 3260 unless given."""
    address, port = split_host_port(text)
    shown = f"[{address}]" if ":" in address else address
    return f"{shown}:{port or DEFAULT_PORT}"


def target_ifaces(iscsi: Iscsi, target: IscsiTarget) -> list[str]:
    """The ifaces a target logs in through: its own list, or every declared iface."""
    return list(target.ifaces) if target.ifaces else sorted(iscsi.ifaces)


Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class StorageNic:
    iface: str
    interface: str
    subnets: tuple[Subnet, ...]
    dynamic: bool  # DHCP or router advertisements: subnets unknown here


def storage_nics(ctx: HostContext) -> tuple[StorageNic, ...]:
    """The host's storage NICs. Its findings and settings ask six times per host: the last host's
    answer is kept (with the host, so that the identity check cannot match another one)."""
    global _last_nics
    if _last_nics is not None and _last_nics[0] is ctx.host:
        return _last_nics[1]
    nics = tuple(_storage_nics(ctx))
    _last_nics = (ctx.host, nics)
    return nics


_last_nics: tuple[object, tuple[StorageNic, ...]] | None = None


def _storage_nics(ctx: HostContext) -> list[StorageNic]:
    iscsi = ctx.host.iscsi
    if iscsi is None:
        return []
    net = ctx.host.network
    topo = topology(net)
    nics = []
    for name, iface in sorted(iscsi.ifaces.items()):
        # a name only under [network.interfaces] (not a link: the network capability's error)
        # still counts with its addresses, so that one mistake gives one message
        l3 = layer3_of(net, iface.interface, topo) or net.interfaces.get(iface.interface)
        addresses = l3.addresses if l3 is not None else []
        subnets = tuple(ip_interface(a).network for a in addresses)
        dynamic = l3 is not None and (l3.dhcp != "no" or l3.accept_ra)
        nics.append(StorageNic(name, iface.interface, subnets, dynamic))
    return nics


def shared_subnet_interfaces(ctx: HostContext, versions: tuple[int, ...] = (4, 6)) -> list[str]:
    """Storage NICs that share a subnet (of these IP versions) with another storage NIC: the
    single-portal topology."""
    nics = storage_nics(ctx)
    shared = set()
    for a in nics:
        for b in nics:
            if a.interface != b.interface and any(
                x.version == y.version and x.version in versions and x.overlaps(y)
                for x in a.subnets
                for y in b.subnets
            ):
                shared.add(a.interface)
    return sorted(shared)


# --- settings --------------------------------------------------------------------------------------


def settings(ctx: HostContext) -> Settings:
    out: Settings = {}
    iscsi, multipath = ctx.host.iscsi, ctx.host.multipath
    if iscsi is not None:
        out["services"] = {
            "openiscsi": {"enable": True, "name": iscsi.initiator_name},
            "iscsi-ifaces": _iscsi_ifaces(iscsi),
        }
        # ARP is IPv4's (IPv6 neighbour discovery answers only for the receiving NIC's addresses);
        # the firewall's reverse-path check covers both families.
        arp = shared_subnet_interfaces(ctx, (4,))
        if arp:
            out["boot"] = {"kernel": {"sysctl": _arp_sysctls(ctx, arp)}}
        shared = shared_subnet_interfaces(ctx)
        if shared:
            names = ", ".join(f'"{name}"' for name in shared)
            # The firewall's reverse-path check (nftables `fib saddr . iif`) can drop the SAN's
            # replies on the second NIC of a subnet, whose route back resolves to the first:
            # exempt the storage NICs only, rather than loosening the check everywhere.
            rules = (
                "# iSCSI NICs in one subnet: the route back to the SAN names only one of them\n"
                f"iifname {{ {names} }} accept\n"
            )
            out["networking"] = {"firewall": {"extraReversePathFilterRules": rules}}
            out["systemd"] = {"network": {"networks": _source_routing(ctx, shared)}}
    if multipath is not None:
        out.setdefault("services", {})["multipath"] = _multipath(multipath)
        modules = sorted(
            {SELECTOR_MODULES[d.path_selector] for d in multipath.devices if d.path_selector}
        )
        if modules:
            out.setdefault("boot", {})["kernelModules"] = modules
    return out


def _iscsi_ifaces(iscsi: Iscsi) -> Settings:
    targets = []
    for target in iscsi.targets:
        entry: Settings = {"portal": portal(target.portal), "ifaces": target_ifaces(iscsi, target)}
        if target.target is not None:
            entry["target"] = target.target
        if target.chap_secret_file is not None:
            entry["chapSecretFile"] = target.chap_secret_file
        targets.append(entry)
    return {
        "enable": True,
        "ifaces": {name: {"interface": i.interface} for name, i in sorted(iscsi.ifaces.items())},
        "targets": targets,
        "replacementTimeout": iscsi.replacement_timeout_s,
    }


def _source_routing(ctx: HostContext, shared: list[str]) -> Settings:
    """Per storage NIC in a shared subnet: its own routing table with that subnet on the NIC, and a
    rule sending what leaves from its addresses there. The main table has the subnet once per NIC
    with equal metrics, so without this everything to the SAN, replies to a peer on the other link
    included, leaves by whichever NIC networkd configured first; iSCSI sessions bound to an iface
    are not affected either way."""
    nics = {nic.interface: nic for nic in storage_nics(ctx)}
    net = ctx.host.network
    topo = topology(net)
    out: Settings = {}
    for position, interface in enumerate(shared, start=1):
        table = SAN_TABLE_BASE + position
        others = [s for other in shared if other != interface for s in nics[other].subnets]
        l3 = layer3_of(net, interface, topo)
        rules: list[Settings] = []
        routes: list[Settings] = []
        for address in l3.addresses if l3 is not None else []:
            ip = ip_interface(address)
            if not any(ip.version == o.version and ip.network.overlaps(o) for o in others):
                continue  # an address outside the shared subnets keeps the main table
            # the address as a host network (`10.1.10.2/32`), without parsing it again
            rules.append({"From": f"{ip.ip}/{ip.max_prefixlen}", "Table": table, "Priority": table})
            route: Settings = {"Destination": str(ip.network), "Table": table}
            if route not in routes:
                routes.append(route)
        if rules:
            out[f"{UNIT_PREFIX}{interface}"] = {"routingPolicyRules": rules, "routes": routes}
    return out


def _sysctl_name(interface: str) -> str:
    # sysctl.d: a "." inside an interface name (a VLAN "san0.10") is written as "/"
    return interface.replace(".", "/")


def _arp_sysctls(ctx: HostContext, interfaces: list[str]) -> Settings:
    """ARP sysctls for `all` and each storage NIC, except where [sysctl] sets one itself (its value
    wins; findings warn when it is weaker)."""
    out: Settings = {}
    for interface in ["all", *interfaces]:
        for key, value in ARP_SYSCTLS.items():
            name = f"net.ipv4.conf.{_sysctl_name(interface)}.{key}"
            if name not in ctx.host.sysctl:
                out[name] = value
    return out


def _quoted(text: str) -> str:
    return f'"{text}"'


def _device(device: MultipathDevice) -> Settings:
    """One multipath.conf device stanza for services.multipath.devices, whose values NixOS writes
    verbatim: strings that may hold spaces are quoted here, path_selector's enum members carry
    their quotes, integers that the option types as strings are strings."""
    out: Settings = {"vendor": _quoted(device.vendor), "product": _quoted(device.product)}
    if device.path_grouping_policy is not None:
        out["path_grouping_policy"] = device.path_grouping_policy
    if device.path_selector is not None:
        out["path_selector"] = _quoted(device.path_selector)
    if device.features is not None:
        out["features"] = _quoted(device.features)
    if device.path_checker is not None:
        out["path_checker"] = device.path_checker
    if device.failback is not None:
        out["failback"] = str(device.failback)
    if device.rr_min_io_rq is not None:
        out["rr_min_io_rq"] = device.rr_min_io_rq
    if device.no_path_retry is not None:
        out["no_path_retry"] = str(device.no_path_retry)
    return out


def _multipath(multipath: Multipath) -> Settings:
    blacklist = [f'wwid "^{wwid}$"' for wwid in multipath.blacklist.wwids]
    for device in multipath.blacklist.devices:
        blacklist += [
            "device {",
            f"  vendor {_quoted(device.vendor)}",
            f"  product {_quoted(device.product)}",
            "}",
        ]
    out: Settings = {
        "enable": True,
        "devices": [_device(d) for d in multipath.devices],
        "defaults": f"find_multipaths {multipath.find_multipaths}\n",
    }
    if multipath.iscsi_only:
        # Every protocol but iSCSI is blacklisted (the exception wins over the blacklist): the
        # boot disk and other local disks stay out of multipath whatever their names.
        blacklist += [
            "# local disks (every protocol but iSCSI, see blacklist_exceptions)",
            'protocol ".*"',
        ]
    if blacklist:
        out["blacklist"] = "".join(f"{line}\n" for line in blacklist)
    if multipath.iscsi_only:
        out["blacklist_exceptions"] = 'protocol "scsi:iscsi"\n'
    return out


# --- findings --------------------------------------------------------------------------------------


def findings(ctx: HostContext) -> Iterator[Finding]:
    if ctx.host.iscsi is not None:
        yield from _iface_findings(ctx)
        yield from _target_findings(ctx)
        yield from _sysctl_findings(ctx)
        if ctx.host.multipath is None and any(
            len(target_ifaces(ctx.host.iscsi, t)) > 1 for t in ctx.host.iscsi.targets
        ):
            yield warning(
                ("iscsi", "targets"),
                "logs in through several ifaces without [multipath]: every LUN appears once per "
                "session as a separate disk; add [multipath] (e.g. [[multipath.devices]])",
            )
    if ctx.host.multipath is not None:
        yield from _multipath_findings(ctx)


def _iface_findings(ctx: HostContext) -> Iterator[Finding]:
    iscsi = ctx.host.iscsi
    assert iscsi is not None
    known = interface_names(ctx.host.network)
    by_interface: dict[str, str] = {}
    nics = {nic.iface: nic for nic in storage_nics(ctx)}
    for name, iface in sorted(iscsi.ifaces.items()):
        path = ("iscsi", "ifaces", name, "interface")
        if name in BUILTIN_IFACES:
            yield error(
                ("iscsi", "ifaces", name),
                f'"{name}" is one of open-iscsi\'s built-in ifaces, which cannot be bound to a NIC: '
                'choose another name, e.g. "ieth0"',
            )
        if iface.interface not in known:
            yield error(path, f'"{iface.interface}" is not an interface defined under [network]')
            continue
        if iface.interface in by_interface:
            yield error(
                path,
                f'"{iface.interface}" is already the interface of iscsi.ifaces.'
                f"{by_interface[iface.interface]}: two ifaces on one NIC are not two paths",
            )
        by_interface.setdefault(iface.interface, name)
        nic = nics[name]
        if not nic.subnets and not nic.dynamic:
            yield error(
                path,
                f'"{iface.interface}" has no address (addresses, dhcp or accept_ra under '
                "[network]): iSCSI sessions bound to it could not connect",
            )


def _target_findings(ctx: HostContext) -> Iterator[Finding]:
    iscsi = ctx.host.iscsi
    assert iscsi is not None
    nics = {nic.iface: nic for nic in storage_nics(ctx)}
    seen: dict[tuple[str, str | None], int] = {}
    for index, target in enumerate(iscsi.targets):
        base = ("iscsi", "targets", index)
        key = (portal(target.portal), target.target)
        if key in seen:
            yield error(
                (*base, "portal"),
                f"{key[0]} is already discovered by iscsi.targets[{seen[key]}]"
                + (" for the same target" if target.target else ""),
            )
        seen.setdefault(key, index)
        if not target.ifaces and not iscsi.ifaces:
            yield error(
                (*base, "ifaces"),
                "no iface to log in through: declare [iscsi.ifaces.<name>] with an interface",
            )
        listed: set[str] = set()
        for position, name in enumerate(target.ifaces):
            if name in listed:
                yield error((*base, "ifaces", position), f'"{name}" is listed twice')
            listed.add(name)
            if name not in iscsi.ifaces:
                yield error(
                    (*base, "ifaces", position), f'"{name}" is not defined in [iscsi.ifaces]'
                )
        address = ip_address(split_host_port(target.portal)[0])
        for name in target_ifaces(iscsi, target):
            nic = nics.get(name)
            if nic is None or nic.dynamic or not nic.subnets:
                continue  # an error of its own, or subnets not known here
            if not any(address in subnet for subnet in nic.subnets):
                subnets = ", ".join(str(s) for s in nic.subnets)
                yield warning(
                    (*base, "portal"),
                    f"{address} is not in a subnet of {nic.interface} ({subnets}), the interface "
                    f"of iface {name}: its session depends on a route through that NIC",
                )


def _sysctl_findings(ctx: HostContext) -> Iterator[Finding]:
    shared = shared_subnet_interfaces(ctx, (4,))
    for interface in ["all", *shared] if shared else []:
        for key, wanted in ARP_SYSCTLS.items():
            name = f"net.ipv4.conf.{_sysctl_name(interface)}.{key}"
            value = ctx.host.sysctl.get(name)
            if isinstance(value, int) and value < wanted:
                yield warning(
                    ("sysctl", name),
                    f"is {value}, but the storage NICs share a subnet and need at least {wanted} "
                    "(ARP flux: the SAN would send one session's traffic to the other NIC)",
                )


def _multipath_findings(ctx: HostContext) -> Iterator[Finding]:
    multipath = ctx.host.multipath
    assert multipath is not None
    if multipath.iscsi_only and ctx.host.iscsi is None:
        yield warning(
            ("multipath", "iscsi_only"),
            "is true (the default) but the host has no [iscsi]: multipath would handle no path; "
            "set iscsi_only = false for other SANs",
        )
    for index, device in enumerate(multipath.devices):
        path = ("multipath", "devices", index, "features")
        if device.features is None:
            continue
        count, *words = device.features.split()
        if int(count) != len(words):
            yield error(
                path,
                f'"{device.features}" counts {count} word(s) but lists {len(words)}: the count '
                "is the number of feature words that follow it",
            )
        if "queue_if_no_path" in words:
            builtin = BUILTIN_NO_PATH_RETRY.get((device.vendor, device.product))
            ignored = (
                f"; multipath-tools' built-in {device.vendor} {device.product} entry sets "
                f"no_path_retry {builtin}, so the feature is ignored here"
                if builtin is not None and device.no_path_retry is None
                else ""
            )
            yield warning(
                path,
                '"queue_if_no_path" is deprecated in multipath-tools: set no_path_retry = '
                '"queue" (or a number of retries), which takes precedence over it' + ignored,
            )
    for index, wwid in enumerate(multipath.blacklist.wwids):
        if KERNEL_NAME.fullmatch(wwid):
            yield error(
                ("multipath", "blacklist", "wwids", index),
                f'"{wwid}" is a kernel device name, which can change between boots: give the '
                "disk's WWID (/lib/udev/scsi_id -g -u /dev/" + wwid + ")",
            )


# --- identities ------------------------------------------------------------------------------------


def identities(ctx: HostContext) -> Iterator[Identity]:
    if ctx.host.iscsi is not None:
        iqn = ctx.host.iscsi.initiator_name
        # fleet.py compares identities case-insensitively, as iSCSI names compare (RFC 3722)
        yield Identity(INITIATOR_NAME, iqn, ("iscsi", "initiator_name"), _renew_iqn(iqn))


def peers(ctx: HostContext) -> Iterator[Peer]:
    """The SAN's portals and target names: a fleet host is never the storage array, and an
    initiator's own IQN named as a target is a copied line."""
    if ctx.host.iscsi is None:
        return
    for index, target in enumerate(ctx.host.iscsi.targets):
        base = ("iscsi", "targets", index)
        address = split_host_port(target.portal)[0]
        yield Peer("iSCSI portal", address, (*base, "portal"), itself=True)
        if target.target is not None:
            yield Peer(
                "iSCSI target",
                target.target,
                (*base, "target"),
                ": an initiator's name is not a target's; take the target's IQN from the array",
                matches=(INITIATOR_NAME,),
                itself=True,
            )


def _renew_iqn(iqn: str) -> Renew:
    """An IQN ending in `:<host>` gets the new host's name; any other is the administrator's."""

    def renew(like: str, name: str) -> str | None:
        return iqn[: -len(like)] + name if iqn.endswith(f":{like}") else None

    return renew


def secret_files(ctx: HostContext) -> Iterator[SecretFile]:
    if ctx.host.iscsi is None:
        return
    for index, target in enumerate(ctx.host.iscsi.targets):
        if target.chap_secret_file is not None:
            yield SecretFile(
                ("iscsi", "targets", index, "chap_secret_file"),
                target.chap_secret_file,
                "iscsi-ifaces.service (the target's CHAP password for iscsiadm)",
            )


CAPABILITY = Capability(
    "storage",
    ("iscsi", "multipath"),
    settings,
    findings,
    identities,
    peers=peers,
    secret_files=secret_files,
)
