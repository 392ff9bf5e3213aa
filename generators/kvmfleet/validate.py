"""Validate one host's merged inventory into a typed `Host`, turning every error into a one-line Problem."""

from __future__ import annotations

import difflib
import re
import typing
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kvmfleet.capabilities import REGISTRY
from kvmfleet.inventory import HostInventory, Layer
from kvmfleet.model import Host
from kvmfleet.model.base import ROLES
from kvmfleet.model.introspect import model_of, unwrap
from kvmfleet.problems import Finding, KeyPath, Problem, Severity, quote

# Unicode categories Cc (C0, DEL, C1) and Cs (lone surrogates).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NIX_INT_MIN = -(2**63) + 1
_NIX_INT_MAX = 2**63 - 1
# Key names that hold secrets: the inventory must give a path to a file instead.
_SECRET_KEY = re.compile(
    r"^(.*_)?(password|passphrase|passwd|secret|token|key|keyring|psk|private_key|api_key)$"
)


def locate(inv: HostInventory, finding: Finding, *, missing: bool = False) -> Problem:
    """Name the file (and, for site roles, the `roles.<role>.` prefix) a finding's key comes from.
    A table the host's own file writes into is the host's (a missing key there, a rule about the
    whole table); a finding located in site.toml says which host it is about."""
    table = finding.path[:-1] if missing else finding.path
    layer = inv.origin(table)
    if layer.file != inv.file and _host_writes_into(inv, table):
        layer = Layer(inv.file)
    path = finding.path
    if layer.role is not None:
        path = ("roles", layer.role, *path)
    message = finding.message if layer.file == inv.file else f"{finding.message} (host {inv.name})"
    return Problem(layer.file, path, message, finding.severity)


def _host_writes_into(inv: HostInventory, table: KeyPath) -> bool:
    depth = len(table)
    return any(
        len(path) > depth and path[:depth] == table and layer.file == inv.file
        for path, layer in inv.origins.items()
    )


def validate_host(inv: HostInventory) -> tuple[Host | None, list[Problem]]:
    """The typed host, or None with the problems that prevent it."""
    # Values from site.toml are checked once by check_site; here only the host's own file's
    # values, and what only the merge shows (missing keys, capability rules).
    content = [*content_findings(inv.data, ()), *_pitfall_findings(inv.data)]
    flagged = {f.path for f in content}
    problems = [locate(inv, f) for f in content if _own(inv, f.path)]
    # With an unknown role, a role layer is missing: "required key" errors would mislead.
    skip_missing = _has_unknown_role(inv.data)
    try:
        host = Host.model_validate(inv.data)
    except ValidationError as exc:
        for finding, missing in _translate(exc.errors(include_url=False), inv.data):
            if missing and skip_missing:
                continue
            if not missing and not _own(inv, finding.path):
                continue
            if not any(finding.path[: len(path)] == path for path in flagged):
                problems.append(locate(inv, finding, missing=missing))
        # An error in site.toml alone still makes this host invalid.
        return None, problems
    invalid = any(f.severity is Severity.ERROR for f in content)
    return (None if invalid else host), problems


def _own(inv: HostInventory, path: KeyPath) -> bool:
    return inv.origin(path).file == inv.file


def _has_unknown_role(data: dict[str, Any]) -> bool:
    section = data.get("host")
    if not isinstance(section, dict) or "roles" not in section:
        return False
    roles = section["roles"]
    return not isinstance(roles, list) or any(role not in ROLES for role in roles)


def check_site(site: dict[str, Any], site_file: str) -> list[Problem]:
    """site.toml on its own: `[roles]` holds one table per known role, and every layer (the top
    level and each role table) has only known keys of the right types, even where no host uses it."""
    problems = [Problem(site_file, f.path, f.message) for f in content_findings(site, ())]
    problems += [Problem(site_file, f.path, f.message, f.severity) for f in _pitfall_findings(site)]
    roles = site.get("roles")
    if isinstance(roles, dict):
        for role, table in roles.items():
            if isinstance(table, dict):
                problems += [
                    Problem(site_file, ("roles", role, *f.path), f.message, f.severity)
                    for f in _pitfall_findings(table)
                ]
    layers: list[tuple[KeyPath, dict[str, Any]]] = [
        ((), {k: v for k, v in site.items() if k != "roles"})
    ]
    roles = site.get("roles")
    if roles is not None and not isinstance(roles, dict):
        problems.append(
            Problem(
                site_file, ("roles",), f"expected a table of role tables, got {_describe(roles)}"
            )
        )
    elif isinstance(roles, dict):
        for role, table in roles.items():
            if role not in ROLES:
                problems.append(Problem(site_file, ("roles", role), _unknown("role", role, ROLES)))
            elif not isinstance(table, dict):
                problems.append(
                    Problem(site_file, ("roles", role), f"expected a table, got {_describe(table)}")
                )
            else:
                layers.append((("roles", role), table))
                host = table.get("host")
                if isinstance(host, dict) and "roles" in host:
                    problems.append(
                        Problem(
                            site_file,
                            ("roles", role, "host", "roles"),
                            "a role layer cannot choose roles: set host.roles in host.toml "
                            "(or at the top level of site.toml)",
                        )
                    )
    flagged = {p.path for p in problems}
    for prefix, layer in layers:
        try:
            Host.model_validate(layer)
        except ValidationError as exc:
            for finding, missing in _translate(exc.errors(include_url=False), layer):
                path = (*prefix, *finding.path)
                # A layer need not be complete: required keys may come from another layer.
                if not missing and not any(path[: len(f)] == f for f in flagged):
                    problems.append(Problem(site_file, path, finding.message))
    return problems


def _pitfall_findings(layer: dict[str, Any]) -> Iterator[Finding]:
    """Every capability's pitfall checks on one raw layer (site top level, a role table, a host)."""
    for cap in REGISTRY:
        yield from cap.pitfalls(layer)


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
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not _NIX_INT_MIN <= value <= _NIX_INT_MAX
    ):
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


# --- pydantic errors -> findings ---------------------------------------------------------------------

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


def _translate(errors: list[ErrorDetails], data: Any) -> Iterator[tuple[Finding, bool]]:
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
        return _unknown("key", str(path[-1]), _field_names(path[:-1]))
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
    return f"{_describe(first['input'])} is not valid: expected " + ", or ".join(expectations)


def _value_message(err: ErrorDetails) -> str:
    kind = err["type"]
    value = err["input"]
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}"
    if kind in {"literal_error", "enum"}:
        return f"{_describe(value)} is not valid: expected {_literal_expected(str(ctx.get('expected', '')))}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return f"{_describe(value)} is out of range: expected {_expectation(err)}"
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


def _describe(value: Any) -> str:
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


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
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
