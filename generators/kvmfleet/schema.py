"""`kvmfleet schema`: JSON Schemas of host.toml and site.toml, for editor completion (`#:schema`)."""

from __future__ import annotations

import copy
import json
from typing import Any

from kvmfleet.model import Host
from kvmfleet.model.base import ROLES

HOST_SCHEMA_FILE = "host.schema.json"
SITE_SCHEMA_FILE = "site.schema.json"


def _optional_everywhere(node: Any) -> Any:
    # Any key may come from another layer (site, role), so no single file must contain it.
    if isinstance(node, dict):
        return {k: _optional_everywhere(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_optional_everywhere(v) for v in node]
    return node


def host_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _optional_everywhere(Host.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kvmfleet host.toml"
    return schema


def site_schema() -> dict[str, Any]:
    schema = copy.deepcopy(host_schema())
    schema["title"] = "kvmfleet site.toml"
    layer = {
        "type": "object",
        "properties": copy.deepcopy(schema["properties"]),
        "additionalProperties": False,
    }
    schema["properties"]["roles"] = {
        "type": "object",
        "description": "Per-role defaults, layered after the top-level tables for hosts with that role.",
        "properties": dict.fromkeys(ROLES, layer),
        "additionalProperties": False,
    }
    return schema


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
