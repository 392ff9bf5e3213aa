"""`kvmfleet show`: one host's merged inventory, every value with the layer it came from."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from kvmfleet.inventory import HostInventory
from kvmfleet.problems import KeyPath, format_keypath, toml_value


def show_text(inv: HostInventory) -> str:
    lines = [
        f"# {inv.name}: layers, first to last: " + ", ".join(str(layer) for layer in inv.layers)
    ]
    rows = list(_leaves(inv.data, ()))
    # Align the source comments, but not behind a 400-character SSH key.
    width = min(
        _ALIGN_MAX,
        max(
            (len(f"{format_keypath(p)} = {toml_value(v, limit=None)}") for p, v in rows), default=0
        ),
    )
    for path, value in rows:
        text = f"{format_keypath(path)} = {toml_value(value, limit=None)}"
        lines.append(f"{text.ljust(width)}  # {inv.origin(path)}")
    return "\n".join(lines) + "\n"


_ALIGN_MAX = 60


def show_json(inv: HostInventory) -> str:
    doc = {
        "host": inv.name,
        "layers": [str(layer) for layer in inv.layers],
        "values": [
            {
                "key": format_keypath(path),
                "value": _json_value(value),
                "from": str(inv.origin(path)),
            }
            for path, value in _leaves(inv.data, ())
        ],
    }
    return json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n"


def _json_value(value: Any) -> Any:
    """JSON has no NaN or infinity (TOML has): write them as TOML spells them, as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _leaves(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path, value
