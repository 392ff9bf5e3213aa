"""OpenSSH public keys as sshd reads them from authorized_keys: `<type> <base64 blob> [comment]`,
fields separated by ASCII spaces or tabs, the blob holding the declared type and a key of a
plausible size for it (plain keys, security-key `sk-*` keys and `*-cert-v01@openssh.com`
certificates)."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable

# What follows the type string in the blob, per key type (RFC 4253 6.6, RFC 5656 3.1,
# OpenSSH PROTOCOL.u2f and PROTOCOL.certkeys).
_CURVE_POINT = {"nistp256": 65, "nistp384": 97, "nistp521": 133}  # uncompressed: 0x04 || X || Y
_RSA_BITS = (1024, 16384)  # sshd refuses RSA below 1024 bits


class _Blob:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", self.data[self.pos : self.pos + 4])
        start = self.pos + 4
        if start + length > len(self.data):
            raise ValueError("truncated")
        self.pos = start + length
        return self.data[start : self.pos]

    def uint(self, size: int) -> int:
        if self.pos + size > len(self.data):
            raise ValueError("truncated")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value

    def done(self) -> bool:
        return self.pos == len(self.data)


def _ed25519(blob: _Blob) -> None:
    if len(blob.string()) != 32:
        raise ValueError("an Ed25519 key is 32 bytes")


def _ecdsa(curve: str) -> Callable[[_Blob], None]:
    def read(blob: _Blob) -> None:
        if blob.string().decode("ascii", "replace") != curve:
            raise ValueError(f"the curve is not {curve}")
        point = blob.string()
        if len(point) != _CURVE_POINT[curve] or point[0] != 4:
            raise ValueError(f"not a {curve} point")

    return read


def _rsa(blob: _Blob) -> None:
    exponent, modulus = blob.string(), blob.string()
    bits = int.from_bytes(modulus, "big").bit_length()
    if not exponent or not _RSA_BITS[0] <= bits <= _RSA_BITS[1]:
        raise ValueError(f"an RSA modulus of {bits} bits (sshd needs {_RSA_BITS[0]} or more)")


def _security_key(key: Callable[[_Blob], None]) -> Callable[[_Blob], None]:
    def read(blob: _Blob) -> None:
        key(blob)
        if not blob.string().startswith(b"ssh:"):
            raise ValueError('the security key\'s application does not start with "ssh:"')

    return read


_KEYS: dict[str, Callable[[_Blob], None]] = {
    "ssh-ed25519": _ed25519,
    "ssh-rsa": _rsa,
    "ecdsa-sha2-nistp256": _ecdsa("nistp256"),
    "ecdsa-sha2-nistp384": _ecdsa("nistp384"),
    "ecdsa-sha2-nistp521": _ecdsa("nistp521"),
    "sk-ssh-ed25519@openssh.com": _security_key(_ed25519),
    "sk-ecdsa-sha2-nistp256@openssh.com": _security_key(_ecdsa("nistp256")),
}


def _certificate(key: Callable[[_Blob], None]) -> Callable[[_Blob], None]:
    def read(blob: _Blob) -> None:
        blob.string()  # nonce
        key(blob)
        blob.uint(8)  # serial
        if blob.uint(4) not in (1, 2):  # user or host certificate
            raise ValueError("the certificate type is neither user nor host")
        for _ in range(2):  # key id, principals
            blob.string()
        blob.uint(8)  # valid after
        blob.uint(8)  # valid before
        for _ in range(5):  # critical options, extensions, reserved, signature key, signature
            blob.string()

    return read


def _cert_name(plain: str) -> str:
    if plain.endswith("@openssh.com"):
        return plain.removesuffix("@openssh.com") + "-cert-v01@openssh.com"
    return plain + "-cert-v01@openssh.com"


KEY_TYPES: dict[str, Callable[[_Blob], None]] = {
    **_KEYS,
    **{_cert_name(name): _certificate(read) for name, read in _KEYS.items()},
}

_FIELDS = re.compile(r"[ \t]+")


def check_public_key(value: str) -> str:
    """`value` if it is a usable public key line, else ValueError saying why (never echoing
    more than the key type)."""
    if "PRIVATE KEY" in value:
        raise ValueError(
            "this is a private key: never put secrets in the inventory; give the public key"
        )
    fields = _FIELDS.split(value.strip(" \t"), maxsplit=2)
    key_type = fields[0]
    expected = (
        '("<type> <base64> [comment]" separated by spaces, type one of '
        + ", ".join(sorted(_KEYS))
        + " or a -cert-v01@openssh.com certificate)"
    )
    odd_space = next((ch for ch in value if ch.isspace() and ch not in " \t"), None)
    if odd_space is not None:
        raise ValueError(
            f"contains the white space U+{ord(odd_space):04X}: sshd separates the fields of a key "
            "by ASCII spaces and tabs only"
        )
    if key_type not in KEY_TYPES:
        shown = key_type if len(key_type) <= 40 else key_type[:37] + "..."
        raise ValueError(f'"{shown}..." is not an SSH public key {expected}')
    if len(fields) < 2:
        raise ValueError(f"{key_type} key without key data {expected}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key_type} key: the key data is not valid base64") from None
    reader = _Blob(blob)
    try:
        if reader.string().decode("ascii", "replace") != key_type:
            raise ValueError(f"the key data is not a {key_type} key")
        KEY_TYPES[key_type](reader)
        if not reader.done():
            raise ValueError("trailing data")
    except ValueError as exc:
        raise ValueError(f"{key_type} key: unusable key data ({exc})") from None
    return value
