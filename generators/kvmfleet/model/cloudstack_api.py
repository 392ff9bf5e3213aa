"""`[cloudstack.api]` and `cloudstack.host_tags`: how kvmfleet reaches the management server's API
(for `kvmfleet cloudstack ...`) and the host tags Add Host gives a host. Credentials are paths to
files on the administrator's machine, never values."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import Field

from kvmfleet.model.secrets import secret_kind
from kvmfleet.model.types import (
    Model,
    SecretFile,
    _secret_path,
    constrained,
    link_local_reason,
    matching,
)
from kvmfleet.problems import quote

# An API or secret key as CloudStack generates it (86 characters of URL-safe Base64), or anything
# of that shape: a long run of key characters with no "/" is a value, not a path.
_KEYLIKE = re.compile(r"[A-Za-z0-9_+=-]{16,}")


def _key_file(value: str) -> str:
    # Never repeat the value in a message: it may be the key itself.
    kind = secret_kind(value) or ("a key" if _KEYLIKE.fullmatch(value) else None)
    if kind is not None:
        raise ValueError(
            f"looks like {kind}, not a path (the value is not shown): secrets never go in the "
            "inventory; put the key in a file on the machine that runs kvmfleet and give its path"
        )
    return _secret_path(value)


KeyFile = Annotated[str, constrained("path to a key file (outside /nix/store)", _key_file)]


def _split(value: str) -> SplitResult | None:
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return None
    return parts


def _api_url(value: str) -> str:
    parts = _split(value)
    if parts is not None and (parts.username is not None or parts.password is not None):
        raise ValueError(
            "has a user name or password in it: credentials never go in the inventory "
            "(the value is not repeated here); use api_key_file and secret_key_file"
        )
    if parts is not None and parts.hostname:
        try:
            local = link_local_reason(ipaddress.ip_address(parts.hostname))
        except ValueError:
            local = None
        if local:
            raise ValueError(f"{quote(value)}: its host {local}")
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(ch.isspace() for ch in value)
    ):
        raise ValueError(
            f'{quote(value)} is not an http(s) URL of the API (e.g. "http://10.0.10.5:8080/client/api")'
        )
    return value


ApiUrl = Annotated[str, constrained("http(s) URL", _api_url)]

HostTag = Annotated[
    str,
    matching(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}",
        "a host tag (letters, digits and _ . : -; no commas or spaces)",
        "host tag",
    ),
]


def _unique_tags(tags: list[str]) -> list[str]:
    seen: set[str] = set()
    for tag in tags:
        # CloudStack compares host tags case-insensitively.
        if tag.lower() in seen:
            raise ValueError(f"{quote(tag)} is listed twice")
        seen.add(tag.lower())
    return tags


HostTags = Annotated[list[HostTag], constrained("array of host tags, each once", _unique_tags)]


class CloudStackApi(Model):
    """`[cloudstack.api]`: the management server's API, used by `kvmfleet cloudstack`."""

    url: ApiUrl = Field(description='API endpoint, e.g. "https://cloud.example.net/client/api".')
    api_key_file: KeyFile = Field(
        description="File (on the machine running kvmfleet) holding the API key."
    )
    secret_key_file: KeyFile = Field(
        description="File (on the machine running kvmfleet) holding the secret key."
    )
    password_file: SecretFile | None = Field(
        default=None,
        description="Fallback for Add Host: file with root's password on the hosts (default: the "
        "management server logs in with its own SSH key).",
    )
