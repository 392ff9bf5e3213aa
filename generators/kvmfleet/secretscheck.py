"""`kvmfleet secrets check`: without any private key, every host's sops file holds every secret
file the inventory provisions from it, encrypted for exactly the recipients the inventory names
(the host's key and the admins), and nothing in secrets/ is left over.

sops keeps a file's structure and key names in clear and encrypts each value (`ENC[...]`); its
metadata (`sops:`) lists the age recipients the data key is encrypted for. That is all this
reads: no value is ever decrypted, printed or compared."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kvmfleet.agekey import KeyConversionError, ssh_to_age
from kvmfleet.capabilities.sops import Provisioned, provisioned
from kvmfleet.capability import HostContext
from kvmfleet.generate import Fleet, HostResult, sops_config
from kvmfleet.inventory import HOST_KEY_FILE, HOSTS_DIR, entry_kind
from kvmfleet.output import Status, classify
from kvmfleet.problems import format_keypath
from kvmfleet.sopsconfig import (
    ADMINS_FILE,
    SECRETS_DIR,
    SOPS_CONFIG,
    recipients,
    secrets_file,
)

_UPDATE = "run `kvmfleet secrets updatekeys`"
# sops' metadata keys for key types other than age: none of them is what a host decrypts with.
_OTHER_KEY_TYPES = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault")


@dataclass(frozen=True)
class Loaded:
    data: dict[str, Any]
    metadata: dict[str, Any]


def check(fleet: Fleet, only: list[str] | None = None) -> list[str]:
    """One line per problem (empty: every checked file is as the inventory says)."""
    root = fleet.inventory.root
    lines: list[str] = []
    config = sops_config(fleet)
    if config is not None:
        status = classify(root, SOPS_CONFIG, config).status
        if status is not Status.UNCHANGED:
            lines.append(f"{SOPS_CONFIG}: {_config_state(status)}; run `kvmfleet generate`")
    for result in fleet.hosts:
        if only is None or result.name in only:
            lines.extend(_check_host(fleet, result))
    if only is None:
        lines.extend(_leftovers(fleet))
    return lines


def _config_state(status: Status) -> str:
    return {
        Status.NEW: "missing",
        Status.HAND_EDITED: "edited by hand",
    }.get(status, "stale")


def _check_host(fleet: Fleet, result: HostResult) -> Iterator[str]:
    root = fleet.inventory.root
    name = result.name
    file = secrets_file(name)
    inv = result.inventory
    needed = provisioned(HostContext(name, result.host, inv.host_key))
    kind = entry_kind(root / file)
    if not needed:
        if kind != "missing":
            why = (
                f"{HOSTS_DIR}/{name} has no {HOST_KEY_FILE}, so the host cannot decrypt it"
                if inv.host_key is None
                else f"{name} provisions no secret file from it ([secrets])"
            )
            yield f"{file}: not used: {why}; add the key, or delete the file"
        return
    if kind == "missing":
        yield (
            f"{file}: missing; it must hold {len(needed)} secret file(s) of {name}: "
            f"create it with `kvmfleet secrets edit {name}`"
        )
        return
    if kind != "file":
        yield f"{file}: not a regular file"
        return
    loaded = _load(root / file)
    if isinstance(loaded, str):
        yield f"{file}: {loaded}"
        return
    yield from (f"{file}: {line}" for line in _plain_values(loaded.data, ()))
    yield from (f"{file}: {line}" for line in _keys(loaded.data, needed, name))
    yield from (
        f"{file}: {line}" for line in _recipients(loaded.metadata, recipients(inv, fleet.admins))
    )


def _load(path: Path) -> Loaded | str:
    """The file's data and sops metadata, or what is wrong (never showing content)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="strict")
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return f"not valid YAML{where}"
    if not isinstance(doc, dict):
        return "not a YAML mapping of secrets"
    metadata = doc.get("sops")
    if not isinstance(metadata, dict) or "mac" not in metadata:
        return (
            "not encrypted by sops (no sops metadata): a plain secret must never be committed; "
            "delete it from the repository (and its history) and recreate it with "
            "`kvmfleet secrets edit`"
        )
    data = {k: v for k, v in doc.items() if k != "sops"}
    return Loaded(data, metadata)


def _plain_values(node: Any, path: tuple[str, ...]) -> Iterator[str]:
    """Values sops did not encrypt (its unencrypted_suffix, a hand edit): the value not shown."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _plain_values(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _plain_values(value, (*path, f"[{index}]"))
    elif not (isinstance(node, str) and node.startswith("ENC[") and node.endswith("]")):
        yield f"{'/'.join(path)}: stored in plain text (the value is not shown); edit it with sops"


def _leaves(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, path + "/")
        else:
            yield path


def _lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _keys(data: dict[str, Any], needed: list[Provisioned], name: str) -> Iterator[str]:
    wanted = {p.key for p in needed}
    for p in needed:
        value = _lookup(data, p.key)
        if value is None:
            keys = ", ".join(format_keypath(d.path) for d in p.declarations)
            yield (
                f"{p.key}: missing (the secret file {p.file} that {keys} names, read by "
                f"{p.first.reader}); add it with `kvmfleet secrets edit {name}`"
            )
        elif isinstance(value, dict):
            yield f"{p.key}: a mapping, not the content of the file {p.file}"
    for leaf in _leaves(data):
        if leaf not in wanted and not any(leaf.startswith(k + "/") for k in wanted):
            yield (
                f"{leaf}: no secret file of {name} is /{leaf} (left over?); remove it with "
                f"`kvmfleet secrets edit {name}`"
            )


def _recipients(metadata: dict[str, Any], expected: tuple[Any, ...]) -> Iterator[str]:
    found: list[str] = []
    stanzas: list[Any] = list(metadata.get("age") or [])
    for group in metadata.get("key_groups") or []:
        if isinstance(group, dict):
            stanzas += list(group.get("age") or [])
            if any(group.get(kind) for kind in _OTHER_KEY_TYPES):
                yield f"encrypted for keys other than age (a key group); {_UPDATE}"
    for stanza in stanzas:
        recipient = stanza.get("recipient") if isinstance(stanza, dict) else None
        if isinstance(recipient, str):
            found.append(recipient.strip())
    for kind in _OTHER_KEY_TYPES:
        if metadata.get(kind):
            yield f"encrypted for {kind} keys, which no host decrypts with; {_UPDATE}"
    want = {r.recipient: r.who for r in expected}
    for recipient in sorted(set(found)):
        if recipient.startswith("ssh-"):
            converted = _converted(recipient)
            whose = f" ({want[converted]})" if converted in want else ""
            yield (
                f"encrypted for an SSH key{whose} as age's ssh-ed25519 recipient, which the age "
                f"identity sops-nix derives from a host key cannot open (its X25519 recipient "
                f"is {converted or 'another'}); {_UPDATE}"
            )
            if converted is not None and converted in want:
                found.append(converted)
        elif recipient not in want:
            yield (
                f"encrypted for {recipient}, which is no longer a recipient (a removed admin or "
                f"a replaced host key?): stale; {_UPDATE}"
            )
    for recipient, who in want.items():
        if recipient not in found:
            yield f"not encrypted for {recipient} ({who}): stale; {_UPDATE}"


def _converted(ssh_key: str) -> str | None:
    try:
        return ssh_to_age(ssh_key)
    except KeyConversionError:
        return None


def _leftovers(fleet: Fleet) -> Iterator[str]:
    """Files in secrets/ that belong to no host."""
    root = fleet.inventory.root
    directory = root / SECRETS_DIR
    if entry_kind(directory) != "dir":
        return
    hosts = {r.name for r in fleet.hosts}
    for path in sorted(directory.iterdir()):
        rel = f"{SECRETS_DIR}/{path.name}"
        if rel == ADMINS_FILE or path.name.startswith("."):
            continue
        if path.name.endswith(".yaml") and path.name.removesuffix(".yaml") in hosts:
            continue
        yield f"{rel}: belongs to no host (no {HOSTS_DIR}/{path.name.removesuffix('.yaml')}): stale; delete it"
