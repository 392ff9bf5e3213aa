"""Who may read which secrets file: the fleet's admins (`secrets/admins.txt`) and each host's
own key, and `.sops.yaml`, the creation rules sops follows, generated from them.

A host's sops file `secrets/<host>.yaml` is encrypted for exactly two kinds of age recipients:
the X25519 recipient of the host's SSH host key (hosts/<host>/ssh_host_ed25519_key.pub, see
kvmfleet.agekey) and every admin's. Nothing else: `kvmfleet secrets check` holds each file to
that list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kvmfleet.agekey import is_age_recipient, ssh_to_age
from kvmfleet.inventory import HOST_KEY_FILE, HOSTS_DIR, HostInventory, entry_kind
from kvmfleet.output import with_header
from kvmfleet.problems import InventoryError, Problem

SECRETS_DIR = "secrets"
ADMINS_FILE = f"{SECRETS_DIR}/admins.txt"
SOPS_CONFIG = ".sops.yaml"


def secrets_file(host: str) -> str:
    return f"{SECRETS_DIR}/{host}.yaml"


@dataclass(frozen=True)
class Recipient:
    """An age X25519 recipient and whose it is (for comments and messages)."""

    recipient: str
    who: str


def load_admins(root: Path) -> tuple[Recipient, ...]:
    """The admins' age recipients, one per line (`age1... [name]`, `#` comments); none without
    the file. A line is never repeated in a message: it may be a pasted secret key."""
    path = root / ADMINS_FILE
    kind = entry_kind(path)
    if kind == "missing":
        return ()
    if kind != "file":
        raise InventoryError([Problem(ADMINS_FILE, (), "is not a regular file")])
    try:
        text = path.read_bytes().decode("utf-8", errors="strict")
    except OSError as exc:
        raise InventoryError(
            [Problem(ADMINS_FILE, (), f"cannot read: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError:
        raise InventoryError([Problem(ADMINS_FILE, (), "not UTF-8 text")]) from None
    admins: list[Recipient] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        recipient, _, name = line.partition(" ")
        if recipient.upper().startswith("AGE-SECRET-KEY-"):
            message = (
                "is an age secret key (not shown): remove it from the repository and give its "
                "public key (`age-keygen -y KEYFILE`)"
            )
        elif not is_age_recipient(recipient):
            message = 'is not an age recipient ("age1..." as age-keygen prints it; not shown)'
        else:
            admins.append(Recipient(recipient, name.strip() or f"admin, line {number}"))
            continue
        problems.append(Problem(ADMINS_FILE, (), f"line {number}: {message}"))
    if problems:
        raise InventoryError(problems)
    return tuple(admins)


def host_recipient(inv: HostInventory) -> Recipient | None:
    if inv.host_key is None:
        return None
    return Recipient(ssh_to_age(inv.host_key), f"{inv.name}'s host key")


def recipients(inv: HostInventory, admins: tuple[Recipient, ...]) -> tuple[Recipient, ...]:
    """Whom the host's sops file is encrypted for: the host, then the admins (none without a
    host key: no file for that host)."""
    host = host_recipient(inv)
    if host is None:
        return ()
    seen = {host.recipient}
    out = [host]
    for admin in admins:
        if admin.recipient not in seen:
            seen.add(admin.recipient)
            out.append(admin)
    return tuple(out)


def render(hosts: list[HostInventory], admins: tuple[Recipient, ...], admins_exist: bool) -> str:
    """`.sops.yaml`: one creation rule per host with a host key."""
    lines = [
        "# One rule per host with a host key: secrets/<host>.yaml is encrypted for the age",
        "# recipient of hosts/<host>/ssh_host_ed25519_key.pub and for secrets/admins.txt.",
        "creation_rules:",
    ]
    sources: list[str] = []
    for inv in sorted(hosts, key=lambda h: h.name):
        found = recipients(inv, admins)
        if not found:
            continue
        sources.append(f"{HOSTS_DIR}/{inv.name}/{HOST_KEY_FILE}")
        lines += [
            f"  - path_regex: (^|/){re.escape(secrets_file(inv.name))}$",
            "    key_groups:",
            "      - age:",
            *(f"          - {r.recipient} # {_comment(r.who)}" for r in found),
        ]
    if admins_exist:
        sources.append(ADMINS_FILE)
    return with_header("\n".join(lines) + "\n", sources)


def _comment(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)
