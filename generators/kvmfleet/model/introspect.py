"""Looking inside model annotations (for did-you-mean hints and the generated reference)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel


def unwrap(annotation: Any) -> Any:
    """Drop `Annotated[...]` and `X | None` wrappers; a real union is returned as it is."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation stands for, if it is one."""
    inner = unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None
