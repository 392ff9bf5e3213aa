"""Quassel IRC core (`[quassel]`) -> services.quassel, its port reachable only from the trusted
networks (through kvmfleet.firewall; the NixOS module has no firewall option)."""

from __future__ import annotations

from collections.abc import Iterator

from kvmfleet.capability import Capability, HostContext, PortUse, SecretFile, Settings
from kvmfleet.model.types import ip_address
from kvmfleet.problems import Finding, error, format_keypath, quote, warning


def settings(ctx: HostContext) -> Settings:
    quassel = ctx.host.quassel
    if quassel is None:
        return {}
    service: Settings = {
        "enable": True,
        "interfaces": list(quassel.listen),
        "portNumber": quassel.port,
        "dataDir": quassel.data_dir,
        "requireSSL": quassel.require_ssl,
    }
    if quassel.certificate_file is not None:
        service["certificateFile"] = quassel.certificate_file
    out: Settings = {"services": {"quassel": service}}
    if _exposed(quassel.listen):
        out["kvmfleet"] = {"firewall": {"trustedTCPPorts": [quassel.port]}}
    return out


def _exposed(listen: list[str]) -> bool:
    """Whether the core listens beyond the host itself (then its port goes through the firewall)."""
    return not all(ip_address(a).is_loopback for a in listen)


def findings(ctx: HostContext) -> Iterator[Finding]:
    quassel = ctx.host.quassel
    if quassel is None:
        return
    if not quassel.listen:
        yield error(("quassel", "listen"), "is empty: the core would accept no client")
    first: dict[int, int] = {}
    for index, address in enumerate(quassel.listen):
        version = ip_address(address).version
        if version in first:
            # quasselcore keeps one listening socket per address family.
            yield error(
                ("quassel", "listen", index),
                f"{quote(address)}: quasselcore listens on one IPv{version} address only, "
                f"already {quote(quassel.listen[first[version]])}",
            )
        first.setdefault(version, index)
    if quassel.require_ssl and quassel.certificate_file is None:
        yield error(("quassel", "require_ssl"), "needs certificate_file")
    if quassel.certificate_file is None:
        yield warning(
            ("quassel",),
            "no certificate_file: clients log in and chat without TLS",
        )
    if quassel.data_dir.startswith("/nix/store/") or quassel.data_dir in ("/", "/nix/store"):
        yield error(
            ("quassel", "data_dir"), f"{quote(quassel.data_dir)} is not a writable state directory"
        )
    elif _shared_directory(quassel.data_dir):
        yield error(
            ("quassel", "data_dir"),
            f"{quote(quassel.data_dir)} is a system or shared directory: the quassel service "
            "would own it (systemd-tmpfiles sets its owner and mode 0755 at every boot); give "
            'the core a directory of its own, e.g. "/var/lib/quassel"',
        )
    yield from _secrets_in_data_dir(ctx, quassel.data_dir)
    if _exposed(quassel.listen) and not ctx.host.firewall.trusted_networks:
        yield warning(
            ("quassel", "port"),
            f"{quassel.port} is open to every network: set firewall.trusted_networks",
        )


# Trees the system owns: a service's state directory is never in them.
_SYSTEM_TREES = (
    "/nix",
    "/boot",
    "/etc",
    "/usr",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/var/lib/nixos",
    "/var/lib/systemd",
    "/var/empty",
    "/root",  # root's home: its SSH keys
)


def _shared_directory(path: str) -> bool:
    """A directory others use too: a top-level one (/home, /srv, /root), one directly under /var
    (/var/lib, /var/log) or /home (a user's home), or anything in a system tree."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or (parts[0] in ("var", "home") and len(parts) == 2):
        return True
    if parts[0] == "home" and parts[2].startswith("."):
        return True  # a user's dot directory (~/.ssh: their keys)
    return any(path == tree or path.startswith(tree + "/") for tree in _SYSTEM_TREES)


def ports(ctx: HostContext) -> Iterator[PortUse]:
    quassel = ctx.host.quassel
    if quassel is not None:
        address = tuple(quassel.listen)
        path = ("quassel", "port")
        yield PortUse(
            "quasselcore", "tcp", quassel.port, quassel.port, address, path, ("quassel", "listen")
        )


def _secrets_in_data_dir(ctx: HostContext, data_dir: str) -> Iterator[Finding]:
    """The quassel user owns its data directory (tmpfiles.d `d` line): a secret file someone else
    reads may not be under it (the owner of a directory can replace the files in it and in its
    subdirectories: root's password hash, a keyring)."""
    # The registry imports this module: read every capability's declarations at run time.
    from kvmfleet.capabilities import secret_files as every_secret_file

    for secret in every_secret_file(ctx):
        if secret.owner == "quassel" or not secret.file.startswith(data_dir + "/"):
            continue  # its own certificate may live in its own directory
        yield error(
            ("quassel", "data_dir"),
            f"{quote(data_dir)} holds {secret.file} ({format_keypath(secret.path)}), a secret "
            f"file read by {secret.reader}: the quassel service owns its data directory and "
            "could replace the secret; give the core a directory of its own, e.g. "
            '"/var/lib/quassel"',
        )
        return


def secret_files(ctx: HostContext) -> Iterator[SecretFile]:
    quassel = ctx.host.quassel
    if quassel is not None and quassel.certificate_file is not None:
        # quasselcore runs as the quassel user and reads the key and certificate at start.
        yield SecretFile(
            ("quassel", "certificate_file"),
            quassel.certificate_file,
            "quasselcore (user quassel)",
            owner="quassel",
            group="quassel",
        )


CAPABILITY = Capability(
    "quassel",
    ("quassel",),
    settings,
    findings,
    secret_files=secret_files,
    service_users=frozenset({"quassel"}),
    ports=ports,
)
