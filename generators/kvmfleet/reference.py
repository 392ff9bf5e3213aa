"""The inventory reference (docs/inventory.md), generated from the models so it cannot drift."""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kvmfleet.model import Host
from kvmfleet.model.introspect import unwrap
from kvmfleet.model.types import Constraint

INTRO = """\
# Inventory reference

Generated from the models by `kvmfleet schema --markdown` (a test fails when it is stale).
Files: `hosts/site.toml` (fleet defaults; `[roles.<role>.*]` tables apply to hosts with that role)
and `hosts/<name>/host.toml` (the host; its directory name is the host name). Layering: site
top-level, then each role of the host in order, then the host; tables merge key by key, scalars and
arrays replace. Unknown keys are errors. "required" means some layer must set it.
"""


def markdown() -> str:
    out = [INTRO]
    for name, field in Host.model_fields.items():
        _section(out, name, field)
    return "\n".join(out).rstrip("\n") + "\n"


def _section(out: list[str], path: str, field: FieldInfo) -> None:
    annotation = field.annotation
    model, shape = _table_model(annotation)
    if model is None:
        out.append(f"## `[{path}]`\n")
        out.append(f"{field.description or ''} Type: {_field_type(field)}.\n")
        return
    header = {"table": f"[{path}]", "list": f"[[{path}]]", "dict": f"[{path}.<name>]"}[shape]
    out.append(f"## `{header}`\n")
    doc = (model.__doc__ or "").strip().splitlines()
    if doc and not doc[0].startswith("A base class"):
        out.append(doc[0] + "\n")
    rows = []
    nested: list[tuple[str, FieldInfo]] = []
    prefix = path if shape == "table" else (f"{path}.<name>" if shape == "dict" else path)
    for key, sub in model.model_fields.items():
        sub_model, _ = _table_model(sub.annotation)
        if sub_model is not None:
            nested.append((f"{prefix}.{key}", sub))
            continue
        cells = (f"`{key}`", _field_type(sub), _default(sub), sub.description or "")
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if rows:
        out += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for sub_path, sub in nested:
        _section(out, sub_path, sub)


def _cell(text: str) -> str:
    """Table cell text: a '|' would end the cell (GitHub reads `\\|` as a literal bar, in code
    spans too), a line break the row."""
    return re.sub(r"(?<!\\)\|", r"\\|", text).replace("\n", " ")


def _table_model(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    inner = unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, "table"
    origin = typing.get_origin(inner)
    args = typing.get_args(inner)
    if (
        origin is list
        and args
        and isinstance(unwrap(args[0]), type)
        and issubclass(unwrap(args[0]), BaseModel)
    ):
        return unwrap(args[0]), "list"
    if origin is dict and len(args) == 2:
        value = unwrap(args[1])
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, "dict"
    return None, ""


def _field_type(field: FieldInfo) -> str:
    """pydantic moves a field's own Annotated metadata into FieldInfo.metadata: put it back."""
    if field.metadata:
        return _type(typing.Annotated[(field.annotation, *field.metadata)])
    return _type(field.annotation)


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in reversed(args[1:]):  # the outermost validator is the most specific
            func = getattr(meta, "func", None)
            if isinstance(func, Constraint):
                return func.kind
        base = _type(args[0])
        for meta in args[1:]:
            for limit in [meta, *getattr(meta, "metadata", [])]:
                for attr, word in (("ge", "≥"), ("le", "≤"), ("gt", ">"), ("lt", "<")):
                    if isinstance(getattr(limit, attr, None), int):
                        base += f" {word} {getattr(limit, attr)}"
        return base
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " or ".join(parts)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"array of {_type(args[0])}"
    if origin is dict:
        return f"table: {_type(args[0])} → {_type(args[1])}"
    return {str: "string", int: "integer", bool: "boolean", float: "number"}.get(
        annotation, str(annotation)
    )


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    if field.default_factory is not None:
        return "—"
    if field.default is None:
        return "—"
    return f"`{json.dumps(field.default)}`"
