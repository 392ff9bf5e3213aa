#!/usr/bin/env python3
"""Keep each bond's configured MAC address, whatever happens to its slaves.

    bond-macs BOND=MAC [BOND=MAC ...]

When a bond's last slave leaves (NICs hot-unplugged, a driver reloaded, `ip link set ... nomaster`)
the kernel gives the bond a random MAC (drivers/net/bonding/bond_main.c, __bond_release_one:
eth_hw_addr_random), and the first slave enslaved while the MAC is random lends the bond its own
(bond_enslave: addr_assign_type == NET_ADDR_RANDOM). systemd-networkd sets a netdev's MACAddress=
only when it creates it, or while it is down without carrier (netdev.c, netdev_can_set_mac), so the
configured MAC would be gone until a reboot.

This daemon listens to the kernel's link notifications (rtnetlink, RTMGRP_LINK) and asks for the
current links once at start (and again when the kernel dropped notifications, ENOBUFS). Whenever a
listed interface of kind "bond" has another MAC, it sets the configured one again (RTM_SETLINK with
IFLA_ADDRESS, as `ip link set BOND address MAC` does). Set while the bond has no slaves, the address
counts as set by the administrator (NET_ADDR_SET), so the next slave to arrive takes the bond's MAC
instead of giving it its own; set while slaves are enslaved, the kernel gives it to every slave.
VLANs on the bond follow its MAC themselves (net/8021q: vlan_sync_address). The 802.3ad system id
the switch sees is not the MAC: networkd's `[Bond] AdActorSystem=` pins that one.

Standard library only. Exit status 0 after --help, 2 on bad arguments, 1 when netlink cannot be
opened, fails or ends (systemd restarts the daemon); each of these is one line.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

# include/uapi/linux/netlink.h, rtnetlink.h, if_link.h
NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_SETLINK = 19
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
RTATTR = struct.Struct("=HH")  # len, type
NLMSGERR = struct.Struct("=i")  # error (negative errno), then the request's header

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}\Z")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
RECV_BUFFER = 1 << 16


def _align(length: int) -> int:
    return (length + 3) & ~3


@dataclass(frozen=True)
class Message:
    type: int
    flags: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Link:
    index: int
    name: str | None
    kind: str | None
    mac: str | None


class Socket(Protocol):
    def send(self, data: bytes, /) -> int: ...

    def recv(self, size: int, /) -> bytes: ...


def parse_targets(args: Sequence[str]) -> dict[str, str]:
    """BOND=MAC arguments as {bond: mac}, the MAC in lower case."""
    targets: dict[str, str] = {}
    for arg in args:
        name, sep, mac = arg.partition("=")
        mac = mac.lower()
        if not sep or not _NAME.match(name) or name in (".", ".."):
            raise ValueError(f"{arg!r} is not BOND=MAC with an interface name of 1-15 characters")
        if not _MAC.match(mac):
            raise ValueError(f"{arg!r}: {mac!r} is not a MAC address such as fe:80:12:04:6d:6f")
        if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
            raise ValueError(f"{arg!r}: a bond's MAC must be unicast and not all zero")
        if name in targets:
            raise ValueError(f"{arg!r}: {name} is listed twice")
        targets[name] = mac
    if not targets:
        raise ValueError("no BOND=MAC given")
    return targets


def messages(data: bytes) -> Iterator[Message]:
    """The netlink messages in one datagram."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            return  # truncated: nothing more to read in this datagram
        yield Message(kind, flags, seq, data[offset + NLMSGHDR.size : offset + length])
        offset += _align(length)


def attributes(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, value) of a run of rtattrs."""
    offset = 0
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > len(data):
            return
        yield kind & NLA_TYPE_MASK, data[offset + RTATTR.size : offset + length]
        offset += _align(length)


def _string(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_link(payload: bytes) -> Link | None:
    """An RTM_NEWLINK payload (ifinfomsg + attributes); None when too short."""
    if len(payload) < IFINFOMSG.size:
        return None
    _family, _type, index, _flags, _change = IFINFOMSG.unpack_from(payload)
    name = kind = mac = None
    for attr, value in attributes(payload[IFINFOMSG.size :]):
        if attr == IFLA_IFNAME:
            name = _string(value)
        elif attr == IFLA_ADDRESS:
            mac = ":".join(f"{b:02x}" for b in value)
        elif attr == IFLA_LINKINFO:
            for info, info_value in attributes(value):
                if info == IFLA_INFO_KIND:
                    kind = _string(info_value)
    return Link(index, name, kind, mac)


def _request(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body


def _attribute(kind: int, value: bytes) -> bytes:
    length = RTATTR.size + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (_align(length) - length)


def dump_request(seq: int) -> bytes:
    """RTM_GETLINK for every link (`ip link show` asks the same)."""
    return _request(RTM_GETLINK, NLM_F_DUMP, seq, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def set_mac_request(seq: int, index: int, mac: str) -> bytes:
    """RTM_SETLINK of one address (`ip link set DEV address MAC` sends the same), with an ACK."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    body += _attribute(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    return _request(RTM_SETLINK, NLM_F_ACK, seq, body)


class Keeper:
    """Reacts to link messages: sets a listed bond's MAC again when it differs."""

    def __init__(self, sock: Socket, targets: dict[str, str], log: Callable[[str], None]) -> None:
        self.sock = sock
        self.targets = targets
        self.log = log
        self.seq = 0
        self.pending: dict[int, tuple[str, str]] = {}  # RTM_SETLINK seq -> (bond, what it did)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def resync(self) -> None:
        self.pending.clear()  # an ACK may have been lost with the notifications
        self.sock.send(dump_request(self._next_seq()))

    def handle(self, data: bytes) -> None:
        for message in messages(data):
            if message.type == RTM_NEWLINK:
                link = parse_link(message.payload)
                if link is not None:
                    self._check(link)
            elif message.type == NLMSG_ERROR:
                self._ack(message)

    def _check(self, link: Link) -> None:
        wanted = self.targets.get(link.name or "")
        if wanted is None or link.kind != "bond" or link.mac is None or link.mac == wanted:
            return
        if any(bond == link.name for bond, _ in self.pending.values()):
            # The kernel sends several notifications for one change (address, carrier, ...), all
            # queued before our request: one RTM_SETLINK at a time, the ACK tells the outcome.
            return
        seq = self._next_seq()
        what = f"{link.name}: MAC {link.mac}, setting the configured {wanted} again"
        self.pending[seq] = (link.name or "", what)
        self.log(what)
        self.sock.send(set_mac_request(seq, link.index, wanted))

    def _ack(self, message: Message) -> None:
        if len(message.payload) < NLMSGERR.size:
            return
        (error,) = NLMSGERR.unpack_from(message.payload)
        request = self.pending.pop(message.seq, None)
        if error == 0 or request is None:
            return  # an ACK, or not ours (a failed dump is retried on the next ENOBUFS)
        # ENODEV: the bond went away meanwhile; a new one sends RTM_NEWLINK of its own.
        try:
            reason = os.strerror(-error)
        except (OverflowError, ValueError):  # not an errno (beyond a C int)
            reason = f"error {error}"
        self.log(f"{request[1]}: the kernel refused: {reason}")

    def run(self, *, resync: bool = True) -> None:
        """Read every link (unless `resync` is false), then handle notifications until the socket
        fails."""
        if resync:
            self.resync()
        while True:
            try:
                data = self.sock.recv(RECV_BUFFER)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # The kernel dropped notifications: ask for every link again.
                self.log("missed link notifications (ENOBUFS), reading all links again")
                self.resync()
                continue
            if not data:
                return
            self.handle(data)


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, RTMGRP_LINK))  # subscribe before the first dump: no change goes unseen
    return sock


def _log(text: str) -> None:
    print(f"bond-macs: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        targets = parse_targets(args)
    except ValueError as exc:
        _log(str(exc))
        return 2
    try:
        sock = open_socket()
    except OSError as exc:
        _log(f"cannot listen to rtnetlink: {exc.strerror}")
        return 1
    _log("keeping " + ", ".join(f"{n} at {m}" for n, m in sorted(targets.items())))
    with sock:
        try:
            Keeper(sock, targets, _log).run()
        except OSError as exc:
            _log(f"rtnetlink failed: {exc.strerror or exc}")
            return 1
    _log("rtnetlink failed: an empty read")  # a daemon has no reason to end
    return 1


if __name__ == "__main__":
    sys.exit(main())
