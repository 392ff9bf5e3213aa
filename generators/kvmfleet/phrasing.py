"""pydantic's validation errors phrased as one inventory finding per key: what was expected, what
was given, and the key that was probably meant."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic_core import ErrorDetails

from kvmfleet.model import Host
from kvmfleet.model.introspect import model_of, unwrap
from kvmfleet.problems import Finding, KeyPath, quote

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "float_type": "a number",
}


def translate(errors: list[ErrorDetails], data: Any) -> Iterator[tuple[Finding, bool]]:
    """Group pydantic's errors by the inventory key they concern (union members give several) and
    phrase each group as one line."""
    groups: dict[KeyPath, list[ErrorDetails]] = {}
    for err in errors:
        path = _input_path(err, data)
        groups.setdefault(path, []).append(err)
    # `slave = ...` gets "did you mean slaves?": then "slaves: required key is missing" is noise.
    suggested = {
        (*path[:-1], suggestion)
        for path, errs in groups.items()
        if errs[0]["type"] == "extra_forbidden"
        for suggestion in [_suggestion(str(path[-1]), _field_names(path[:-1]))]
        if suggestion
    }
    for path, errs in groups.items():
        missing = all(e["type"] == "missing" for e in errs)
        if missing and path in suggested:
            continue
        yield Finding(path, _phrase(path, errs)), missing


def _input_path(err: ErrorDetails, data: Any) -> KeyPath:
    """The part of pydantic's `loc` that names inventory keys (the rest names union members)."""
    path: list[str | int] = []
    node = data
    loc = list(err["loc"])
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
        elif err["type"] == "missing" and i == len(loc) - 1 and isinstance(part, str):
            path.append(part)
            break
        else:
            break
        path.append(part)
    return tuple(path)


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _phrase(path: KeyPath, errs: list[ErrorDetails]) -> str:
    first = errs[0]
    kind = first["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return unknown("key", str(path[-1]), _field_names(path[:-1]))
    if any(e["loc"] and e["loc"][-1] == "[key]" for e in errs):
        return _value_message(first)
    if len(errs) == 1:
        return _value_message(first)
    # A union: "x" is none of the accepted forms.
    expectations = []
    for err in errs:
        text = _expectation(err)
        if text and text not in expectations:
            expectations.append(text)
    return f"{describe(first['input'])} is not valid: expected " + ", or ".join(expectations)


def _value_message(err: ErrorDetails) -> str:
    kind = err["type"]
    value = err["input"]
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(value)}"
    if kind in {"literal_error", "enum"}:
        return f"{describe(value)} is not valid: expected {_literal_expected(str(ctx.get('expected', '')))}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return f"{describe(value)} is out of range: expected {_expectation(err)}"
    if kind == "too_short":
        n = int(ctx.get("min_length", 1))
        return f"needs at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind == "string_too_short":
        return "must not be empty"
    return str(err["msg"])


def _expectation(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind == "literal_error":
        return _literal_expected(str(ctx.get("expected", "")))
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        word, key = bounds[kind]
        return f"a number {word} {ctx.get(key)}"
    if kind == "value_error":
        return str(ctx.get("error", ""))
    return str(err["msg"])


def _literal_expected(text: str) -> str:
    # pydantic: "'grub' or 'systemd-boot'" -> "grub" or "systemd-boot" (TOML quoting)
    return re.sub(r"'((?:[^'\\]|\\.)*)'", r'"\1"', text)


def describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return quote(value)


def _suggestion(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` was probably meant to be: a close spelling, or one it abbreviates."""
    candidates = sorted(known)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    prefixed = [k for k in candidates if len(name) >= 3 and k.startswith(name)]
    return prefixed[0] if len(prefixed) == 1 else None


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = _suggestion(name, known)
    if close:
        return f"unknown {what}; did you mean {quote(close)}?"
    if known:
        return f"unknown {what} (expected one of: {', '.join(known)})"
    return f"unknown {what}"


def _field_names(path: KeyPath) -> list[str]:
    """The keys the model accepts at `path` (for did-you-mean)."""
    annotation: Any = Host
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = model_of(annotation)
    return list(model.model_fields) if model else []


def _step(annotation: Any, part: str | int) -> Any:
    model = model_of(annotation)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field else None
    container = unwrap(annotation)
    origin = typing.get_origin(container)
    if origin is list and isinstance(part, int):
        return typing.get_args(container)[0]
    if origin is dict:
        return typing.get_args(container)[1]
    return None
