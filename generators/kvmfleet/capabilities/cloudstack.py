"""CloudStack KVM hypervisor (`[cloudstack]`): the agent (services.cloudstack-agent), libvirt's
remote access on the management address, the management server's SSH key and the hypervisor's
ports, open to the trusted networks only (kvmfleet.hypervisor, kvmfleet.firewall).

The host GUID: on Add Host the management server resolves the address it was given and passes
`UUID.nameUUIDFromBytes(address.getHostAddress().getBytes())` to cloudstack-setup-agent as `-g`
(LibvirtServerDiscoverer), and waits for a host with that GUID. kvmfleet derives the same value
from `add_host_address`, so the generated agent.properties already holds it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlsplit

from kvmfleet.capability import (
    DROP,
    Capability,
    Drop,
    HostContext,
    Identity,
    Peer,
    PortUse,
    Settings,
)
from kvmfleet.model import Host
from kvmfleet.model.cloudstack import CloudStack
from kvmfleet.model.types import ip_address, ip_interface, link_local_reason
from kvmfleet.problems import Finding, error, warning

LIBVIRT_PORTS = {"tls": 16514, "tcp": 16509}
VNC_PORTS = (5900, 6100)
MIGRATION_PORTS = (49152, 49216)


def java_host_address(address: str) -> str:
    """The text Java's InetAddress.getHostAddress() gives for an address: IPv4 dotted quad, IPv6
    as eight hex groups without leading zeros and without "::" compression."""
    ip = ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return ":".join(f"{int(group, 16):x}" for group in ip.exploded.split(":"))


def management_server_guid(address: str) -> str:
    """Java's UUID.nameUUIDFromBytes of the address text: MD5, version 3, IETF variant."""
    digest = hashlib.md5(java_host_address(address).encode("ascii"), usedforsecurity=False)
    return str(uuid.UUID(bytes=digest.digest(), version=3))


def _private_addresses(host: Host, cs: CloudStack) -> list[str]:
    """The private bridge's addresses the management server can reach and libvirt can listen on:
    an IPv6 link-local one would need a zone none of them can be given."""
    bridge = host.network.bridges.get(cs.private_nic)
    if bridge is None:
        return []
    return list(_reachable(tuple(bridge.addresses)))


@lru_cache(maxsize=1 << 12)  # asked eight times per host (findings, settings, ports, the GUID)
def _reachable(addresses: tuple[str, ...]) -> tuple[str, ...]:
    ips = [ip_interface(a).ip for a in addresses]
    return tuple(str(ip) for ip in ips if not link_local_reason(ip))


def add_host_address(host: Host, cs: CloudStack) -> str | None:
    """The address the management server is given on Add Host (None: the private bridge has no
    static address, an error of its own)."""
    if cs.add_host_address is not None:
        return cs.add_host_address
    addresses = _private_addresses(host, cs)
    ipv4 = [a for a in addresses if ip_address(a).version == 4]
    preferred = ipv4 or addresses
    return preferred[0] if preferred else None


def host_guid(host: Host, cs: CloudStack) -> str | None:
    if cs.guid is not None:
        return cs.guid
    address = add_host_address(host, cs)
    return None if address is None else management_server_guid(address)


def settings(ctx: HostContext) -> Settings:
    host, cs = ctx.host, ctx.host.cloudstack
    if cs is None or "hypervisor" not in host.host.roles:
        return {}
    agent = {
        "enable": True,
        "managementServers": list(cs.management_servers),
        "port": cs.port,
        "zone": cs.zone,
        "pod": cs.pod,
        "cluster": cs.cluster,
        "guid": host_guid(host, cs),
        "privateNic": cs.private_nic,
        "publicNic": cs.public_nic,
        "guestNic": cs.guest_nic,
    }
    nfs = {k: v for k, v in (("timeo", cs.nfs.timeo), ("retrans", cs.nfs.retrans)) if v is not None}
    hypervisor: Settings = {
        "libvirt": {
            "transport": cs.libvirt_transport,
            "listenAddresses": _private_addresses(host, cs),
        },
        "vncListen": add_host_address(host, cs),
        "nestedVirtualisation": cs.nested_virtualization,
    }
    if nfs:
        hypervisor["nfs"] = nfs
    result: Settings = {
        "services": {"cloudstack-agent": agent},
        "kvmfleet": {
            "hypervisor": hypervisor,
            # Reachable from firewall.trusted_networks only (see the base module).
            "firewall": {
                "trustedTCPPorts": [LIBVIRT_PORTS[cs.libvirt_transport]],
                "trustedTCPPortRanges": [
                    {"from": VNC_PORTS[0], "to": VNC_PORTS[1]},
                    {"from": MIGRATION_PORTS[0], "to": MIGRATION_PORTS[1]},
                ],
            },
        },
    }
    if cs.ssh_authorized_keys:
        keys = list(cs.ssh_authorized_keys)
        result["users"] = {"users": {"root": {"openssh": {"authorizedKeys": {"keys": keys}}}}}
    return result


def findings(ctx: HostContext) -> Iterator[Finding]:
    host, cs = ctx.host, ctx.host.cloudstack
    if cs is None:
        if "hypervisor" in host.host.roles:
            yield error(
                ("host", "roles"),
                "a hypervisor needs a [cloudstack] table (version, management_servers, zone, pod, "
                "cluster), in the host file or in site.toml's [roles.hypervisor.cloudstack]",
            )
        return
    if "hypervisor" not in host.host.roles:
        yield error(
            ("cloudstack",),
            'the CloudStack agent runs on hypervisors only: add "hypervisor" to host.roles',
        )
    for key in ("private_nic", "public_nic", "guest_nic"):
        nic = getattr(cs, key)
        if nic not in host.network.bridges:
            yield error(
                ("cloudstack", key),
                f'"{nic}" is not a bridge defined under [network.bridges] '
                "(the agent plugs guests into bridges named after the zone's traffic labels)",
            )
    addresses = _private_addresses(host, cs)
    if cs.private_nic in host.network.bridges and not addresses:
        only_link_local = bool(host.network.bridges[cs.private_nic].addresses)
        yield error(
            ("cloudstack", "private_nic"),
            f'"{cs.private_nic}" has no static address'
            + (" but IPv6 link-local ones, which need a zone" if only_link_local else "")
            + ": the management server adds the host, and libvirt listens, on it",
        )
    elif cs.add_host_address is not None and link_local_reason(ip_address(cs.add_host_address)):
        # the management server connects to it, libvirt and VNC listen on it: none has a zone
        yield error(
            ("cloudstack", "add_host_address"),
            f'"{cs.add_host_address}" {link_local_reason(ip_address(cs.add_host_address))}',
        )
    elif cs.add_host_address is not None and addresses and cs.add_host_address not in addresses:
        yield error(
            ("cloudstack", "add_host_address"),
            f'"{cs.add_host_address}" is not an address of "{cs.private_nic}" '
            f"({', '.join(addresses)})",
        )
    address = add_host_address(host, cs)
    if cs.guid is not None and address is not None:
        derived = management_server_guid(address)
        if cs.guid != derived:
            yield warning(
                ("cloudstack", "guid"),
                f'differs from the GUID the management server derives on Add Host of "{address}" '
                f"({derived}): Add Host would wait for that GUID and fail. Keep guid only for a "
                "host CloudStack already holds under it (added at an earlier address: its "
                "record keeps that GUID and the agent reconnects with it); otherwise remove it",
            )
    if cs.libvirt_transport == "tcp":
        yield warning(
            ("cloudstack", "libvirt_transport"),
            '"tcp" is unauthenticated: anyone who reaches port 16509 controls every VM on this '
            'host; use "tls"',
        )
    if not host.firewall.trusted_networks:
        yield warning(
            ("firewall", "trusted_networks"),
            "is empty: SSH, libvirt, VNC and migration ports of this hypervisor are open to "
            "every network",
        )


def identities(ctx: HostContext) -> Iterator[Identity]:
    cs = ctx.host.cloudstack
    if cs is None:
        return
    guid = host_guid(ctx.host, cs)
    if guid is not None:
        # Case-insensitive, as the management server compares GUIDs.
        yield Identity("CloudStack GUID", guid.lower(), ("cloudstack", "guid"), _new_guid)


def peers(ctx: HostContext) -> Iterator[Peer]:
    cs = ctx.host.cloudstack
    if cs is None:
        return
    for index, server in enumerate(cs.management_servers):
        # The management server runs elsewhere: not on a hypervisor, this one included.
        yield Peer(
            "management server", server, ("cloudstack", "management_servers", index), itself=True
        )
    if cs.api is not None:
        host = api_host(cs.api.url)
        if host is not None:
            # Reached from the administrator's machine (a tunnel on loopback is fine there), but
            # never a fleet host.
            yield Peer("management server", host, ("cloudstack", "api", "url"))


def ports(ctx: HostContext) -> Iterator[PortUse]:
    """libvirt's remote socket on the management addresses (modules/hypervisor.nix), QEMU's VNC
    consoles on the Add Host address (qemu.conf vnc_listen; the range the firewall opens), and
    incoming migrations on every address (qemu.conf migration_address's default). The agent
    itself only connects out (to the management servers' port)."""
    host, cs = ctx.host, ctx.host.cloudstack
    if cs is None or "hypervisor" not in host.host.roles:
        return
    port = LIBVIRT_PORTS[cs.libvirt_transport]
    here = ("cloudstack", "libvirt_transport")
    yield PortUse("libvirtd", "tcp", port, port, tuple(_private_addresses(host, cs)), here)
    vnc = add_host_address(host, cs)
    if vnc is not None:
        yield PortUse("QEMU VNC consoles", "tcp", *VNC_PORTS, (vnc,), ("cloudstack",))
    yield PortUse("QEMU migrations", "tcp", *MIGRATION_PORTS, ("0.0.0.0", "::"), ("cloudstack",))


def api_host(url: str) -> str | None:
    """The API URL's host, normalised as the inventory's addresses are (IPs compressed, names in
    lower case)."""
    host = urlsplit(url).hostname
    if host is None:
        return None
    try:
        return str(ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _new_guid(like: str, name: str) -> Drop:
    # Add Host derives the GUID from the host's address; a copied or random one would differ.
    return DROP


CAPABILITY = Capability(
    "cloudstack",
    ("cloudstack",),
    settings,
    findings,
    identities,
    peers=peers,
    ports=ports,
    # libvirtd runs guests as qemu-libvirtd; rpcbind (the NFS client of primary storage) as rpc.
    service_users=frozenset({"qemu-libvirtd", "rpc"}),
)
