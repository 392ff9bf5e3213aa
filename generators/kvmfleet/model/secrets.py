"""Recognising secret material by its shape, so that it is refused wherever it appears and never
repeated in a message: a message says what the value looks like instead."""

from __future__ import annotations

import re

# A Ceph key is base64 of a 28-byte blob that starts with 0x01 0x00: "AQ" ... "==" (40 chars).
_CEPH_KEY = re.compile(r"AQ[A-Za-z0-9+/]{36}==")
# crypt(3) hashes as mkpasswd and /etc/shadow write them.
_CRYPT_HASH = re.compile(r"\$(1|2[abxy]|5|6|y|gy|7|sha1|md5)\$[./A-Za-z0-9$,=+-]{8,}")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PRIVATE KEY-----")
# Long runs of base64 or hex with no path or word structure: API keys, tokens, WireGuard keys.
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")


PRIVATE_KEY = "a private key"
CEPH_KEY = "a Ceph key"
PASSWORD_HASH = "a password hash"


def secret_kind(value: str) -> str | None:
    """What secret `value` holds ("a Ceph key", ...), or None when it does not look like one."""
    if _PRIVATE_KEY.search(value):
        return PRIVATE_KEY
    if _CEPH_KEY.search(value):
        return CEPH_KEY
    if _CRYPT_HASH.search(value):
        return PASSWORD_HASH
    return None


def looks_like_token(value: str) -> bool:
    """A bare key or token (where a file path was expected): long, unstructured, no '/' start."""
    return not value.startswith("/") and _TOKEN.fullmatch(value) is not None
