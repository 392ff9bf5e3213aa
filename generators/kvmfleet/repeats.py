"""Values listed twice in one array of a host's inventory, compared as the models normalise them
("2001:DB8::1" and "2001:db8::1" are one name server): the second has no effect and often stands
for a value that was meant to be different."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel

from kvmfleet.problems import Finding, KeyPath, format_keypath, quote, warning


def repeated_values(host: BaseModel) -> Iterator[Finding]:
    """A warning for each array item equal to an earlier one, anywhere in the host."""
    out: list[Finding] = []
    _walk(host, (), out)
    return iter(out)


def _walk(value: Any, path: KeyPath, out: list[Finding]) -> None:
    # Appends to one list rather than nesting generators: it runs on every value of every host.
    # Only arrays can hold a repeat: a scalar field or table value is not visited at all.
    if isinstance(value, BaseModel):
        for name in _field_names(type(value)):
            child = getattr(value, name)
            if isinstance(child, BaseModel | dict | list):
                _walk(child, (*path, name), out)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, BaseModel | dict | list):
                _walk(item, (*path, str(key)), out)
    elif isinstance(value, list):
        first: dict[tuple[type, Any], int] = {}
        for index, item in enumerate(value):
            if isinstance(item, BaseModel | dict | list):
                _walk(item, (*path, index), out)
                continue
            key = (type(item), item)  # True == 1, but not here
            if key in first:
                earlier = format_keypath((*path, first[key]))
                out.append(
                    warning(
                        (*path, index),
                        f"{quote(item)} is listed twice (also {earlier}): the second has no effect",
                    )
                )
            else:
                first[key] = index


@cache  # pydantic's `model_fields` is a property: a model's names are looked up once
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


def overlaps(a: KeyPath, b: KeyPath) -> bool:
    """One path is the other or inside it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]
