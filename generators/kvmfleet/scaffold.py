"""`kvmfleet new HOST --like OTHER`: copy a host file, keeping its comments, and clear the values that
must be unique in the fleet (addresses, MACs, IQN, GUID) so that the new host cannot collide."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Array, Item

from kvmfleet.capabilities import REGISTRY
from kvmfleet.capability import Drop, HostContext, HostValue, Identity
from kvmfleet.inventory import (
    HOST_FILE,
    HOST_NAME,
    HOSTS_DIR,
    INVALID_HOST_NAME,
    LINK_MESSAGE,
    entry_kind,
    load,
)
from kvmfleet.locate import locate
from kvmfleet.output import write_atomic
from kvmfleet.problems import InventoryError, Problem, format_keypath, quote, toml_value
from kvmfleet.site import check_site
from kvmfleet.validate import validate_host


@dataclass(frozen=True)
class Scaffolded:
    path: str
    to_fill: tuple[str, ...]  # key paths left empty for the administrator
    replaced: tuple[str, ...]  # key paths given a fresh value
    dropped: tuple[str, ...] = ()  # key paths removed: they default to a value derived for the host
    own: tuple[str, ...] = ()  # key paths of this machine's own values, left empty


def new_host(root: Path, name: str, like: str) -> Scaffolded:
    target_dir = root / HOSTS_DIR / name
    target = target_dir / HOST_FILE
    target_rel = f"{HOSTS_DIR}/{name}/{HOST_FILE}"
    if not HOST_NAME.match(name):
        raise InventoryError(
            [Problem(f"{HOSTS_DIR}/{name}", (), f"{quote(name)} {INVALID_HOST_NAME}")]
        )
    dir_kind = entry_kind(target_dir)
    if dir_kind == "link":
        raise InventoryError([Problem(f"{HOSTS_DIR}/{name}", (), LINK_MESSAGE)])
    if dir_kind not in ("missing", "dir"):
        raise InventoryError(
            [Problem(f"{HOSTS_DIR}/{name}", (), "exists and is not a directory; not touching it")]
        )
    if entry_kind(target) != "missing":
        raise InventoryError([Problem(target_rel, (), "already exists; not overwriting it")])
    inventory = load(root, only=[like])
    source_inv = inventory.hosts[0]
    checked = validate_host(source_inv)
    host = checked.host
    problems = [*checked.problems, *(locate(source_inv, f, missing=True) for f in checked.missing)]
    if host is None:
        # Values inherited from site.toml are checked there, once.
        site_problems = check_site(inventory.site, inventory.site_file)
        raise InventoryError(
            [
                *site_problems,
                *problems,
                Problem(source_inv.file, (), "fix this host before copying it"),
            ]
        )
    # load() read the same bytes strictly; decode them the same way (no newline translation).
    source_text = (root / source_inv.file).read_bytes().decode("utf-8").removeprefix("\ufeff")
    try:
        tomlkit.parse(source_text)
    except tomlkit.exceptions.ParseError as exc:  # tomllib accepted it, so this is rare
        raise InventoryError(
            [Problem(source_inv.file, (), f"cannot edit with comments kept: {exc}")]
        ) from None
    ctx = HostContext(like, host)
    renewable: list[Identity | HostValue] = []
    for cap in REGISTRY:
        renewable.extend(i for i in cap.identities(ctx) if not i.derived)
        renewable.extend(cap.host_values(ctx))
    changes = [
        (value, value.renew(like, name))
        for value in renewable
        # A value from site.toml is not the host's to change.
        if source_inv.origin(value.path).file == source_inv.file
    ]
    original = tomllib.loads(source_text)
    source_text = _without_header(source_text)
    header = f"# {name}: created by `kvmfleet new {name} --like {like}`; empty values must be filled in.\n"
    for with_comments in (True, False):
        doc = tomlkit.parse(source_text)
        to_fill: list[str] = []
        replaced: list[str] = []
        dropped: list[str] = []
        own: list[str] = []
        done: set[tuple[str | int, ...]] = set()
        # declared both unique and the machine's own (a disk by id): said as the machine's own
        own_paths = {v.path for v, _ in changes if isinstance(v, HostValue)}
        for identity, fresh in changes:
            if identity.path in done or (
                isinstance(identity, Identity) and identity.path in own_paths
            ):
                continue
            done.add(identity.path)
            if isinstance(fresh, Drop):
                if _drop(doc, identity.path):
                    dropped.append(format_keypath(identity.path))
                continue
            note = _note(original, identity, like, fresh) if with_comments else None
            if _set(doc, identity.path, fresh or "", note):
                if fresh:
                    replaced.append(format_keypath(identity.path))
                elif isinstance(identity, HostValue):
                    own.append(format_keypath(identity.path))
                else:
                    to_fill.append(format_keypath(identity.path))
        text = header + tomlkit.dumps(doc)
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue  # a comment landed inside an inline table: write the values alone
        try:
            write_atomic(target, text, root=root, exclusive=True)
        except FileExistsError:  # another `new` of the same host won the race
            raise InventoryError(
                [Problem(target_rel, (), "already exists; not overwriting it")]
            ) from None
        return Scaffolded(target_rel, tuple(to_fill), tuple(replaced), tuple(dropped), tuple(own))
    raise InventoryError([Problem(source_inv.file, (), "cannot be copied with its comments kept")])


def _without_header(text: str) -> str:
    """The source file without its opening comment block, which describes the other host; a
    `#:schema` directive is kept (it names the schema, not the host)."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    index = 0
    while index < len(lines) and lines[index].lstrip().startswith("#"):
        if lines[index].startswith("#:schema"):
            kept.append(lines[index])
        index += 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    return "".join(kept) + ("\n" if kept else "") + "".join(lines[index:])


def _note(
    original: dict[str, Any], identity: Identity | HostValue, like: str, fresh: str | None
) -> str:
    # An array item's comment goes on the array: name all of its old values.
    path = identity.path[:-1] if isinstance(identity.path[-1], int) else identity.path
    try:
        old = toml_value(_lookup(original, path))
    except (KeyError, IndexError, TypeError):
        old = quote(identity.value)
    if fresh:
        return f"was {old} in {like}"
    if isinstance(identity, HostValue):
        return f"this machine's own: was {old} in {like}"
    return f"must be unique: was {old} in {like}"


def _lookup(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _drop(doc: Any, path: tuple[str | int, ...]) -> bool:
    """Delete `path` from the tomlkit document; False if it is not there."""
    node: Any = doc
    try:
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _set(doc: Any, path: tuple[str | int, ...], value: str, note: str | None) -> bool:
    """Set `path` in the tomlkit document and comment the line; False if the path is not there."""
    node: Any = doc
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    try:
        node[last]
    except (KeyError, IndexError, TypeError):
        return False
    node[last] = value
    if note is None:
        return True
    if isinstance(node, Array):
        node.comment(note)
    else:
        item = node.item(last) if hasattr(node, "item") else None
        if isinstance(item, Item):
            item.comment(note)
    return True
