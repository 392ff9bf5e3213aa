"""Checks on raw inventory values whatever their table: no secrets, no control or invisible
characters, integers that Nix can hold."""

from __future__ import annotations

import re
import typing
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydantic.fields import FieldInfo

from kvmfleet.model import Host
from kvmfleet.model.introspect import model_of, unwrap
from kvmfleet.model.secrets import CEPH_KEY, PRIVATE_KEY, secret_kind
from kvmfleet.nix import INT_MAX, INT_MIN
from kvmfleet.problems import Finding, KeyPath

# Unicode categories Cc (C0, DEL, C1) and Cs (lone surrogates).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Key names that hold secrets: the inventory must give a path to a file instead.
_SECRET_KEY = re.compile(
    r"^(.*_)?(password|passphrase|passwd|secret|token|key|keyring|psk|private_key|api_key)$"
)


def content_findings(value: Any, path: KeyPath, shape: Any = Host) -> Iterator[Finding]:
    """Checks on raw values whatever their table: no secrets, no control characters, integers
    that Nix can hold. `shape` is the model annotation `value` should have (None: unknown): a
    key named like a secret is one only where the key is not a name the user chose (an
    interface called `key` is fine, `password = ...` in a table is not)."""
    out: list[Finding] = []
    _content(value, path, shape, out)
    return iter(out)


def _content(value: Any, path: KeyPath, shape: Any, out: list[Finding]) -> None:
    # Appends to one list rather than nesting generators: it runs on every value of every host.
    if isinstance(value, dict):
        fields, mapping, _ = _shape_of(shape)
        for key, child in value.items():
            if fields is not None:
                field = fields.get(key)
                child_shape = None if field is None else field.annotation
                # An unknown key named like a setting: `password = ...` is meant as a secret.
                secret_name_matters = field is None
            elif mapping is not None:
                # A name the user chose (an interface, a sysctl, a user): never a secret's name.
                child_shape, secret_name_matters = mapping, False
            else:
                child_shape, secret_name_matters = None, True
            control = _control_character(key)
            if control:
                out.append(
                    Finding(
                        (*path, key),
                        f"the key contains a control or invisible character ({control})",
                    )
                )
            elif secret_name_matters and _secret_name(key) and isinstance(child, str | int):
                out.append(
                    Finding(
                        (*path, key),
                        "looks like a secret: secrets never go in the inventory; provision a file "
                        "on the host and give its path in the matching *_file key",
                    )
                )
            elif type(child) is str:  # most values: judged here, a path made only for a finding
                message = _string_message(child)
                if message is not None:
                    out.append(Finding((*path, key), message))
            else:
                _content(child, (*path, key), child_shape, out)
    elif isinstance(value, list):
        element = _shape_of(shape)[2]
        for index, child in enumerate(value):
            _content(child, (*path, index), element, out)
    elif isinstance(value, str):
        message = _string_message(value)
        if message is not None:
            out.append(Finding(path, message))
    elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        out.append(Finding(path, f"{value} does not fit in a NixOS integer (64-bit)"))


# Site-wide values come back in every host's merged inventory, and keys in every host's file:
# each distinct string is judged once per run (a verdict depends on the string alone).
@lru_cache(maxsize=1 << 16)
def _string_message(value: str) -> str | None:
    """What is wrong with a string value, if anything."""
    kind = secret_kind(value)
    if kind == PRIVATE_KEY:
        return "is a private key: secrets never go in the inventory; give a path to a file instead"
    if kind is not None and kind != CEPH_KEY:  # the ceph capability names the key file to use
        return (
            f"looks like {kind}: secrets never go in the inventory; put it in a file on the "
            "host, provisioned out of band, and give that file's path"
        )
    if control := _control_character(value):
        return (
            f"contains a control or invisible character ({control}): "
            "inventory values are plain single-line text"
        )
    return None


@lru_cache(maxsize=1 << 16)
def _secret_name(key: str) -> bool:
    return _SECRET_KEY.match(key.lower()) is not None


_SHAPES: dict[int, tuple[Any, Any, Any]] = {}


def _shape_of(shape: Any) -> tuple[dict[str, FieldInfo] | None, Any | None, Any]:
    """(the model's fields, mapping values, list elements) of an annotation; annotations live as
    long as their model classes, so their ids are stable keys for the run (and a model's fields
    are not looked up again: pydantic's `model_fields` is a property)."""
    key = id(shape)
    known = _SHAPES.get(key)
    if known is None:
        model = model_of(shape)
        fields = None if model is None else model.model_fields
        known = (fields, _mapping_values(shape), _list_elements(shape))
        _SHAPES[key] = known
    return known


def _mapping_values(shape: Any) -> Any | None:
    """For `dict[K, V]` (a table of names the user chooses), V; else None."""
    inner = unwrap(shape)
    if typing.get_origin(inner) is dict:
        return typing.get_args(inner)[1]
    return None


def _list_elements(shape: Any) -> Any:
    inner = unwrap(shape)
    if typing.get_origin(inner) is list:
        return typing.get_args(inner)[0]
    return None


@lru_cache(maxsize=1 << 16)
def _control_character(text: str) -> str | None:
    """The first control character in `text`, spelled as an escape (e.g. `\\u000a`)."""
    match = _CONTROL.search(text)
    if match:
        return f"\\u{ord(match[0]):04x}"
    if text.isascii():
        return None
    # Invisible format characters (U+202E right-to-left override, U+200B zero-width space) and
    # line/paragraph separators hide what a value really says.
    for ch in text:
        if unicodedata.category(ch) in {"Cf", "Zl", "Zp"}:
            return f"\\u{ord(ch):04x}"
    return None
