"""The only code that turns Python values into Nix text.

Values: None, bool, int, str, list and dict with str keys (the inventory has no floats, so
neither do settings). Output is what nixfmt (RFC 166) would
print: two-space indent, non-empty lists and attribute sets expanded one item per line, a chain of
single-key attribute sets written as one dotted binding (`boot.loader.grub.enable = true;`), long
values moved after `=` as nixfmt moves them. Strings are escaped so that Nix reads back
exactly the Python string; that is tested against real Nix for arbitrary input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TypeGuard

NixValue = None | bool | int | str | Sequence["NixValue"] | Mapping[str, "NixValue"]

INDENT = "  "
WIDTH = 100  # nixfmt's default line width, counted after the indentation
_SIMPLE_SELECTORS = 4  # nixfmt keeps long strings beside `a.b.c.d =` but not beside longer paths
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*\Z")
# Keywords cannot be bare attribute names (`or` only with a warning in newer Nix: quote it too).
_KEYWORDS = frozenset({"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"})
INT_MIN = -(2**63) + 1  # Nix reads `-N` as negation of N, and N must fit in 63 bits
INT_MAX = 2**63 - 1
_DOUBLE_QUOTED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DOUBLE_QUOTED_SPECIAL = re.compile(r'[\\"\n\r\t]|\$\{')
_INDENTED_SPECIAL = re.compile(r"''|\$\{")


class NixRenderError(ValueError):
    """A value that has no Nix representation (NUL in a string, a float, an int beyond 64 bits, ...)."""


def render_module(attrs: Mapping[str, NixValue]) -> str:
    """A whole file's body: the attribute set and a final newline."""
    return render(attrs) + "\n"


def render(value: NixValue, depth: int = 0) -> str:
    """A Nix expression for `value`, laid out as if it starts at indentation `depth`."""
    # Exact types first: settings are plain dicts, lists and strings, and ABC checks are slow.
    kind = type(value)
    if kind is str:
        return string(value, depth)  # type: ignore[arg-type]
    if kind is dict:
        return _attrs(value, depth)  # type: ignore[arg-type]
    if kind is list:
        return _list(value, depth)  # type: ignore[arg-type]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, str):
        return string(value, depth)
    if isinstance(value, Mapping):
        return _attrs(value, depth)
    if isinstance(value, Sequence):
        return _list(value, depth)
    raise NixRenderError(f"cannot render {type(value).__name__} as Nix")


@lru_cache(maxsize=65536)
def attr_name(name: str) -> str:
    """An attribute name: bare when it is an identifier, else a quoted string."""
    if not isinstance(name, str):
        raise NixRenderError(f"attribute names must be strings, not {type(name).__name__}")
    if _IDENTIFIER.match(name) and name not in _KEYWORDS:
        return name
    _check_text(name)
    return _double_quoted(name)


def _check_text(text: str) -> None:
    if "\0" in text:
        raise NixRenderError("Nix strings cannot contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NixRenderError("Nix files are UTF-8: lone surrogates cannot be written") from None


def string(text: str, depth: int = 0) -> str:
    """A string literal: `''...''` for multi-line text ending in a newline, `"..."` otherwise."""
    if "\n" not in text:  # the common case; its depth does not matter
        return _one_line(text)
    _check_text(text)
    if _fits_indented(text):
        return _indented(text, depth)
    return _double_quoted(text)


@lru_cache(maxsize=65536)
def _one_line(text: str) -> str:
    """A string without a newline: the same values (a domain, a package, a path) come back in
    every host's file, so each is checked and escaped once per run (errors are not kept)."""
    _check_text(text)
    return _double_quoted(text)


def _int(value: int) -> str:
    if not INT_MIN <= value <= INT_MAX:
        raise NixRenderError(f"{value} does not fit in a Nix integer (64-bit)")
    return str(value)


def _double_quoted(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        token = match[0]
        return "\\${" if token == "${" else _DOUBLE_QUOTED_ESCAPES[token]

    return '"' + _DOUBLE_QUOTED_SPECIAL.sub(escape, text) + '"'


def _fits_indented(text: str) -> bool:
    """Use `''...''` only for plain text blocks that Nix's indentation stripping and nixfmt leave
    exactly as they are: ends in a newline, one line starts flush left, no tab, CR, control
    character, whitespace-only line or trailing space."""
    if "\n" not in text or not text.endswith("\n"):
        return False
    if not text.replace("\n", "").isprintable():  # a tab is not printable either
        return False
    lines = text.split("\n")[:-1]
    if any(line != line.rstrip() for line in lines):
        return False
    return any(line and not line[0].isspace() for line in lines)


def _indented(text: str, depth: int) -> str:
    pad = INDENT * (depth + 1)
    out = ["''"]
    for line in text.split("\n")[:-1]:
        escaped = _INDENTED_SPECIAL.sub(lambda m: "'''" if m[0] == "''" else "''${", line)
        out.append(pad + escaped if escaped else "")
    out.append(INDENT * depth + "''")
    return "\n".join(out)


def _list(items: Sequence[NixValue], depth: int) -> str:
    if not items:
        return "[ ]"
    pad = INDENT * (depth + 1)
    lines = ["["]
    for item in items:
        one_line = type(item) is str and "\n" not in item
        text = _one_line(item) if one_line else render(item, depth + 1)
        # `[ 1 -2 ]` is a subtraction: a negative number in a list needs parentheses.
        lines.append(pad + (f"({text})" if text.startswith("-") else text))
    lines.append(INDENT * depth + "]")
    return "\n".join(lines)


def _attrs(attrs: Mapping[str, NixValue], depth: int) -> str:
    if not attrs:
        return "{ }"
    lines = ["{"]
    for key, value in attrs.items():
        lhs = attr_name(key)
        parts = 1
        # Collapse `a = { b = { c = 1; }; }` into `a.b.c = 1;` (most values are not attribute
        # sets: their type alone says so, before any ABC check).
        while type(value) not in _NOT_MAPPINGS and _is_mapping(value) and len(value) == 1:
            ((child_key, child),) = value.items()
            lhs = f"{lhs}.{attr_name(child_key)}"
            parts += 1
            value = child
        lines.append(_binding(lhs, parts, value, depth + 1))
    lines.append(INDENT * depth + "}")
    return "\n".join(lines)


# Types that are never attribute sets, so the slow ABC check is skipped for them.
_NOT_MAPPINGS = frozenset({str, int, bool, list, type(None)})


def _is_mapping(value: NixValue) -> TypeGuard[Mapping[str, NixValue]]:
    kind = type(value)
    return kind is dict or (kind not in _NOT_MAPPINGS and isinstance(value, Mapping))


def _binding(lhs: str, parts: int, value: NixValue, depth: int) -> str:
    """`lhs = value;` (`lhs`: `parts` attribute names joined by dots) laid out as nixfmt does: a
    long value moves to the next line after `=`, except a string after a simple name (at most
    four bare identifiers)."""
    pad = INDENT * depth
    # (most values are one-line strings: `render` would come to `_one_line` two calls later)
    one_line = type(value) is str and "\n" not in value
    text = _one_line(value) if one_line else render(value, depth)
    first_break = text.find("\n")
    if first_break < 0 or first_break == len(text) - 1:  # nothing after the first line
        line = f"{lhs} = {text};"
        if len(line) > WIDTH and not (_simple(lhs, parts) and text.startswith('"')):
            return f"{pad}{lhs} =\n{pad}{INDENT}{text};"
        return pad + line
    if not _simple(lhs, parts) and len(lhs) + 3 + first_break > WIDTH:
        return f"{pad}{lhs} =\n{pad}{INDENT}{render(value, depth + 1)};"
    return f"{pad}{lhs} = {text};"


def _simple(lhs: str, parts: int) -> bool:
    # attr_name quoted every part that is not an identifier, and an identifier has no quote.
    return parts <= _SIMPLE_SELECTORS and '"' not in lhs
