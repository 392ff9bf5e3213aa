"""Checks on raw inventory values whatever their table: no secrets, no control or invisible
characters, integers that Nix can hold."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from kvmfleet.nix import INT_MAX, INT_MIN
from kvmfleet.problems import Finding, KeyPath

# Unicode categories Cc (C0, DEL, C1) and Cs (lone surrogates).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Key names that hold secrets: the inventory must give a path to a file instead.
_SECRET_KEY = re.compile(
    r"^(.*_)?(password|passphrase|passwd|secret|token|key|keyring|psk|private_key|api_key)$"
)


def content_findings(value: Any, path: KeyPath) -> Iterator[Finding]:
    """Checks on raw values whatever their table: no secrets, no control characters, integers
    that Nix can hold."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = (*path, key)
            control = _control_character(key)
            if control:
                yield Finding(
                    child_path, f"the key contains a control or invisible character ({control})"
                )
            elif _SECRET_KEY.match(key.lower()) and isinstance(child, str | int):
                yield Finding(
                    child_path,
                    "looks like a secret: secrets never go in the inventory; provision a file on the host "
                    "and give its path in the matching *_file key",
                )
            else:
                yield from content_findings(child, child_path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from content_findings(child, (*path, index))
    elif isinstance(value, str):
        if "PRIVATE KEY" in value and "-----BEGIN" in value:
            yield Finding(
                path,
                "is a private key: secrets never go in the inventory; give a path to a file instead",
            )
        elif control := _control_character(value):
            yield Finding(
                path,
                f"contains a control or invisible character ({control}): "
                "inventory values are plain single-line text",
            )
    elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        yield Finding(path, f"{value} does not fit in a NixOS integer (64-bit)")


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
