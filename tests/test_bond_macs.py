"""bond-macs (pkgs/bond-macs): the rtnetlink messages it reads and sends, and what it does when a
bond's slaves leave and return, against a fake kernel that follows drivers/net/bonding/bond_main.c
(random MAC when the last slave leaves, the first slave's MAC while the bond's is random) and
net/core/rtnetlink.c (RTM_NEWLINK notifications, ACKs). The messages here are built by hand from
include/uapi/linux/{netlink,rtnetlink,if_link}.h, not with the program's own encoder."""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections import deque
from dataclasses import dataclass, field

import pytest

from conftest import host_program

bm = host_program("bond-macs")

BOND_MAC = "fe:80:12:04:6d:6f"
NIC1 = "14:fe:b5:c6:62:e0"
NIC2 = "14:fe:b5:c6:62:e2"
# include/linux/netdevice.h
NET_ADDR_PERM, NET_ADDR_RANDOM, NET_ADDR_STOLEN, NET_ADDR_SET = 0, 1, 2, 3
NLA_F_NESTED = 1 << 15


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def newlink(
    index: int, name: str, mac: str, kind: str | None, *, nested_flag: bool = False
) -> bytes:
    """An RTM_NEWLINK as rtnl_fill_ifinfo writes it (the attributes this program reads)."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, 0x1043, 0)  # ARPHRD_ETHER, UP...
    body += _attr(3, name.encode() + b"\0")  # IFLA_IFNAME
    body += _attr(4, struct.pack("=I", 1500))  # IFLA_MTU: read past, not used
    body += _attr(1, _mac_bytes(mac))  # IFLA_ADDRESS
    body += _attr(2, b"\xff" * 6)  # IFLA_BROADCAST
    if kind is not None:
        info = _attr(1, kind.encode() + b"\0")  # IFLA_INFO_KIND
        body += _attr(18 | (NLA_F_NESTED if nested_flag else 0), info)  # IFLA_LINKINFO
    return struct.pack("=IHHII", 16 + len(body), 16, 0, 0, 0) + body


def ack(seq: int, error: int) -> bytes:
    body = struct.pack("=i", error) + struct.pack("=IHHII", 32, 19, 5, seq, 0)
    return struct.pack("=IHHII", 16 + len(body), 2, 0x100, seq, 0) + body  # NLMSG_ERROR


def done(seq: int) -> bytes:
    return struct.pack("=IHHIIi", 20, 3, 2, seq, 0, 0)  # NLMSG_DONE, NLM_F_MULTI


@dataclass
class Iface:
    index: int
    name: str
    kind: str | None
    mac: str
    assign: int = NET_ADDR_PERM
    slaves: list[str] = field(default_factory=list)


class FakeKernel:
    """Links, bonds and their slaves, with the kernel's MAC rules; a socket's send() and recv()."""

    def __init__(self, *, refuse: int = 0) -> None:
        self.links = {
            "bond0": Iface(5, "bond0", "bond", BOND_MAC, NET_ADDR_SET),
            "lo": Iface(1, "lo", None, "00:00:00:00:00:00"),
            "p9p1": Iface(2, "p9p1", None, NIC1),
            "p10p1": Iface(3, "p10p1", None, NIC2),
        }
        self.refuse = refuse  # an errno RTM_SETLINK fails with
        self.inbox: deque[bytes | OSError] = deque()
        self.sent: list[tuple[int, int, int, bytes]] = []  # type, flags, seq, body
        self.setlinks = 0
        for slave in ("p9p1", "p10p1"):
            self.enslave(slave, notify=False)

    def _notify(self, iface: Iface) -> None:
        self.inbox.append(newlink(iface.index, iface.name, iface.mac, iface.kind))

    # bond_enslave / __bond_release_one
    def enslave(self, slave: str, *, notify: bool = True) -> None:
        bond = self.links["bond0"]
        if not bond.slaves and bond.assign == NET_ADDR_RANDOM:
            bond.mac, bond.assign = self.links[slave].mac, NET_ADDR_STOLEN
            if notify:
                self._notify(bond)
        bond.slaves.append(slave)

    def release(self, slave: str) -> None:
        bond = self.links["bond0"]
        bond.slaves.remove(slave)
        if not bond.slaves:
            bond.mac, bond.assign = "a6:3e:11:22:33:44", NET_ADDR_RANDOM  # eth_hw_addr_random
            # NETDEV_CHANGEADDR, then NETDEV_CHANGE (carrier lost), NETDEV_RELEASE...: each an
            # RTM_NEWLINK with the bond's current MAC (netvm: three reached bond-macs, on 6.12 and 7.2)
            for _ in range(3):
                self._notify(bond)

    # the socket
    def send(self, data: bytes) -> int:
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data)
        assert length == len(data)
        body = data[16:]
        self.sent.append((kind, flags, seq, body))
        if kind == 18:  # RTM_GETLINK dump
            assert flags & 0x300 == 0x300 and flags & 1
            self.inbox.append(
                b"".join(newlink(i.index, i.name, i.mac, i.kind) for i in self.links.values())
            )
            self.inbox.append(done(seq))
        elif kind == 19:  # RTM_SETLINK
            _family, _type, index, _flags, _change = struct.unpack_from("=BxHiII", body)
            attr_len, attr_type = struct.unpack_from("=HH", body, 16)
            assert (attr_len, attr_type) == (10, 1), (attr_len, attr_type)  # IFLA_ADDRESS, 6 bytes
            mac = ":".join(f"{b:02x}" for b in body[20:26])
            self.setlinks += 1
            if self.refuse:
                self.inbox.append(ack(seq, -self.refuse))
                return len(data)
            iface = next(i for i in self.links.values() if i.index == index)
            iface.mac, iface.assign = mac, NET_ADDR_SET  # bond_set_mac_address: slaves too
            self._notify(iface)
            self.inbox.append(ack(seq, 0))
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.inbox:
            raise DrainedError
        item = self.inbox.popleft()
        if isinstance(item, OSError):
            raise item
        return item


class DrainedError(Exception):
    """The fake socket has nothing more: ends Keeper.run() in a test."""


def _run(kernel: FakeKernel, targets: dict[str, str] | None = None) -> tuple[object, list[str]]:
    log: list[str] = []
    keeper = bm.Keeper(kernel, targets or {"bond0": BOND_MAC}, log.append)
    with pytest.raises(DrainedError):
        keeper.run()
    return keeper, log


# --- the whole scenario ---------------------------------------------------------------------------


def test_every_slave_leaves_and_returns_the_bond_keeps_its_mac() -> None:
    kernel = FakeKernel()
    log: list[str] = []
    keeper = bm.Keeper(kernel, {"bond0": BOND_MAC}, log.append)
    with pytest.raises(DrainedError):
        keeper.run()
    assert kernel.setlinks == 0 and log == []  # at start everything is as configured
    kernel.release("p9p1")
    kernel.release("p10p1")  # the kernel: random MAC
    with pytest.raises(DrainedError):
        keeper.run(resync=False)
    bond = kernel.links["bond0"]
    assert (bond.mac, bond.assign) == (BOND_MAC, NET_ADDR_SET)
    assert log == [f"bond0: MAC a6:3e:11:22:33:44, setting the configured {BOND_MAC} again"]
    # three notifications of the random MAC, but one RTM_SETLINK
    assert kernel.setlinks == 1
    # the first slave back: with the MAC set (not random), the bond keeps it
    kernel.enslave("p10p1")
    kernel.enslave("p9p1")
    with pytest.raises(DrainedError):
        keeper.run(resync=False)
    assert (bond.mac, bond.assign) == (BOND_MAC, NET_ADDR_SET)
    assert kernel.setlinks == 1


def test_a_slave_that_came_back_first_is_corrected_too() -> None:
    """Slaves back before the keeper saw the random MAC (networkd re-enslaves at once): the bond has
    the slave's MAC (stolen), and the keeper sets the configured one, which the slaves then get."""
    kernel = FakeKernel()
    kernel.release("p9p1")
    kernel.release("p10p1")
    kernel.enslave("p9p1")
    kernel.inbox.clear()  # the notifications were lost: the start's dump finds the state
    _keeper, log = _run(kernel)
    assert kernel.links["bond0"].mac == BOND_MAC
    assert log == [f"bond0: MAC {NIC1}, setting the configured {BOND_MAC} again"]


def test_missed_notifications_are_made_up_by_reading_every_link() -> None:
    kernel = FakeKernel()
    kernel.release("p9p1")
    kernel.release("p10p1")
    kernel.inbox.clear()  # the kernel dropped them (socket buffer full) ...
    kernel.inbox.append(OSError(errno.ENOBUFS, "No buffer space available"))  # ... and says so
    log: list[str] = []
    keeper = bm.Keeper(kernel, {"bond0": BOND_MAC}, log.append)
    with pytest.raises(DrainedError):
        keeper.run(resync=False)
    assert [s[0] for s in kernel.sent] == [18, 19]  # a dump, then the fix
    assert kernel.links["bond0"].mac == BOND_MAC
    assert log[0] == "missed link notifications (ENOBUFS), reading all links again"


def test_other_socket_errors_end_the_daemon() -> None:
    kernel = FakeKernel()
    kernel.inbox.append(OSError(errno.EBADF, "Bad file descriptor"))
    keeper = bm.Keeper(kernel, {"bond0": BOND_MAC}, [].append)
    with pytest.raises(OSError):
        keeper.run(resync=False)


def test_a_refused_address_is_logged_once_and_not_retried_in_a_loop() -> None:
    kernel = FakeKernel(refuse=errno.EADDRNOTAVAIL)
    kernel.links["bond0"].mac = NIC1
    _keeper, log = _run(kernel)
    assert kernel.setlinks == 1
    assert log == [
        f"bond0: MAC {NIC1}, setting the configured {BOND_MAC} again",
        f"bond0: MAC {NIC1}, setting the configured {BOND_MAC} again: the kernel refused: "
        "Cannot assign requested address",
    ]


# --- what is and is not touched -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected_sets"),
    [
        (newlink(5, "bond0", BOND_MAC, "bond"), 0),  # as configured
        (newlink(5, "bond0", NIC1, "bond"), 1),
        (newlink(5, "bond0", NIC1, "bond", nested_flag=True), 1),  # NLA_F_NESTED on IFLA_LINKINFO
        (newlink(5, "bond0", NIC1, "bridge"), 0),  # a bond0 that is no bond
        (newlink(5, "bond0", NIC1, None), 0),
        (newlink(7, "bond1", NIC1, "bond"), 0),  # not listed
    ],
)
def test_only_a_listed_bond_with_another_mac_is_set(message: bytes, expected_sets: int) -> None:
    kernel = FakeKernel()
    keeper = bm.Keeper(kernel, {"bond0": BOND_MAC}, [].append)
    keeper.handle(message)
    sets = [s for s in kernel.sent if s[0] == 19]
    assert len(sets) == expected_sets
    if sets:
        _kind, flags, _seq, body = sets[0]
        assert flags == 0x1 | 0x4  # NLM_F_REQUEST | NLM_F_ACK
        assert struct.unpack_from("=BxHiII", body)[2] == 5  # the bond's ifindex
        assert body[16:26] == struct.pack("=HH", 10, 1) + _mac_bytes(BOND_MAC)
        assert len(body) == 28  # the attribute padded to 4 bytes


def test_messages_in_one_datagram_are_all_read_and_padding_is_skipped() -> None:
    data = newlink(5, "bond0", NIC1, "bond") + newlink(2, "p9p1x", NIC2, None) + done(1)
    parsed = list(bm.messages(data))
    assert [m.type for m in parsed] == [16, 16, 3]
    links = [bm.parse_link(m.payload) for m in parsed[:2]]
    assert links == [bm.Link(5, "bond0", "bond", NIC1), bm.Link(2, "p9p1x", None, NIC2)]


def test_truncated_messages_and_attributes_are_ignored() -> None:
    whole = newlink(5, "bond0", NIC1, "bond")
    assert list(bm.messages(whole[:-3])) == []
    assert bm.parse_link(b"\0" * 8) is None
    # an attribute claiming more than there is ends the attribute list
    cut = whole[16 : 16 + 16] + struct.pack("=HH", 200, 3) + b"bond0\0"
    assert bm.parse_link(cut) == bm.Link(5, None, None, None)


# --- arguments -------------------------------------------------------------------------------------


def test_targets_are_parsed_and_lower_cased() -> None:
    assert bm.parse_targets(["bond0=FE:80:12:04:6D:6F", "bond1=02:00:00:00:00:01"]) == {
        "bond0": BOND_MAC,
        "bond1": "02:00:00:00:00:01",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no BOND=MAC given"),
        (["bond0"], "'bond0' is not BOND=MAC"),
        (["averyveryverylongname=" + BOND_MAC], "is not BOND=MAC"),
        (["bond0=fe:80:12:04:6d"], "is not a MAC address"),
        (["bond0=01:00:5e:00:00:01"], "must be unicast"),
        (["bond0=00:00:00:00:00:00"], "must be unicast and not all zero"),
        ([f"bond0={BOND_MAC}", f"bond0={NIC1}"], "bond0 is listed twice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bm.main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("bond-macs: ")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert bm.main(["--help"]) == 0
    assert "bond-macs BOND=MAC" in capsys.readouterr().out


# --- the real kernel's encoding ------------------------------------------------------------------


def test_a_dump_of_this_kernels_links_parses() -> None:
    """The dump request reaches this machine's kernel and its answer parses: every link's name and
    MAC as /sys/class/net shows them."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    except OSError as exc:  # no netlink here (a sandbox): nothing to compare with
        if os.environ.get("CI"):
            pytest.fail(f"no rtnetlink socket, and CI is set: {exc}")
        pytest.skip(f"no rtnetlink socket: {exc}")
    from pathlib import Path

    found: dict[str, str | None] = {}
    with sock:
        sock.send(bm.dump_request(1))
        finished = False
        while not finished:
            for message in bm.messages(sock.recv(bm.RECV_BUFFER)):
                if message.type == 3:  # NLMSG_DONE
                    finished = True
                elif message.type == 16:
                    link = bm.parse_link(message.payload)
                    assert link is not None and link.name is not None
                    found[link.name] = link.mac
    sysfs = Path("/sys/class/net")
    expected = {p.name: (p / "address").read_text().strip() or None for p in sysfs.iterdir()}
    assert found == expected
