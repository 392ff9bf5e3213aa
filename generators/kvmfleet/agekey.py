"""SSH ed25519 keys as age X25519 keys, exactly as sops-nix's sops-install-secrets sees them.

A host decrypts its secrets with its SSH host key: sops-install-secrets converts the private
ed25519 key into an age X25519 identity (`agessh.SSHPrivateKeyToAge` of Mic92/ssh-to-age), so a
host's sops file must be encrypted for the X25519 recipient of the same key, which is what
`ssh-to-age` prints for the public key. (sops also accepts `ssh-ed25519 ...` as an age
recipient, but that is age's own ssh-ed25519 stanza type, which an X25519 identity cannot open.)

The conversion is the birational map from the twisted Edwards curve of Ed25519 to the Montgomery
curve of X25519 (RFC 7748, section 4.1): a point (x, y) maps to u = (1 + y) / (1 - y) mod p. The
public key encodes y (little endian, the top bit holds the sign of x). The private half: X25519's
scalar is Ed25519's, the first half of SHA-512(seed); ssh-to-age encodes those 32 bytes as they
are and X25519 clamps them when it uses them (RFC 7748, section 5).
Recipients and identities are Bech32 (BIP 173) strings: "age1..." and "AGE-SECRET-KEY-1...".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

_P = 2**255 - 19
# The Edwards curve constant of Ed25519: -121665/121666 mod p.
_D = (-121665 * pow(121666, -1, _P)) % _P

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"


class KeyConversionError(ValueError):
    """A key that cannot be converted (the message never holds key material)."""


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit in range(5):
            if (top >> bit) & 1:
                check ^= _GENERATOR[bit]
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc, bits, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(data: list[int]) -> bytes:
    acc, bits, out = 0, 0, bytearray()
    for value in data:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise KeyConversionError("invalid padding")
    return bytes(out)


def bech32_encode(hrp: str, data: bytes) -> str:
    """Bech32 (BIP 173, not Bech32m) of `data`, lower case, as age writes it before
    upper-casing identities."""
    values = _to_5bit(data)
    polymod = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(hrp, data) of a Bech32 string in one case; KeyConversionError when it is not valid."""
    if text.lower() != text and text.upper() != text:
        raise KeyConversionError("mixed case")
    text = text.lower()
    hrp, sep, rest = text.rpartition("1")
    if not sep or not hrp or len(rest) < 6 or any(c not in _CHARSET for c in rest):
        raise KeyConversionError("not Bech32")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod([*_hrp_expand(hrp), *values]) != 1:
        raise KeyConversionError("bad checksum")
    return hrp, _from_5bit(values[:-6])


def is_age_recipient(text: str) -> bool:
    """Whether `text` is an age X25519 recipient ("age1" + 32 bytes, lower case)."""
    if text != text.lower():
        return False
    try:
        hrp, data = bech32_decode(text)
    except KeyConversionError:
        return False
    return hrp == RECIPIENT_HRP and len(data) == 32


def ed25519_public_key(line: str) -> bytes:
    """The 32-byte Ed25519 public key of an OpenSSH public key line (`ssh-ed25519 AAAA... c`)."""
    fields = line.split()
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        raise KeyConversionError('not an "ssh-ed25519 <base64> [comment]" public key')
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise KeyConversionError("the key data is not valid base64") from None
    parts = _strings(blob)
    if len(parts) != 2 or parts[0] != b"ssh-ed25519" or len(parts[1]) != 32:
        raise KeyConversionError("the key data is not an ssh-ed25519 key")
    return parts[1]


def _strings(blob: bytes) -> list[bytes]:
    """An SSH wire-format blob as its length-prefixed strings."""
    out, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            raise KeyConversionError("truncated key data")
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        if pos + 4 + length > len(blob):
            raise KeyConversionError("truncated key data")
        out.append(blob[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return out


def montgomery_u(public: bytes) -> bytes:
    """X25519's u coordinate (32 bytes, little endian) of an encoded Ed25519 point."""
    if len(public) != 32:
        raise KeyConversionError("an Ed25519 key is 32 bytes")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P:
        raise KeyConversionError("not a point of Ed25519 (y is not reduced)")
    # The point must exist: x^2 = (y^2 - 1) / (d y^2 + 1) needs a square root mod p (Euler).
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    if x2 != 0 and pow(x2, (_P - 1) // 2, _P) != 1:
        raise KeyConversionError("not a point of Ed25519")
    if y == 1:
        raise KeyConversionError("the Ed25519 identity point has no X25519 counterpart")
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    return u.to_bytes(32, "little")


def ssh_to_age(line: str) -> str:
    """The age X25519 recipient of an SSH ed25519 public key line, as `ssh-to-age` prints it."""
    return bech32_encode(RECIPIENT_HRP, montgomery_u(ed25519_public_key(line)))


_OPENSSH_PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"


def ed25519_seed(private_key: str) -> bytes:
    """The 32-byte seed of an unencrypted OpenSSH ed25519 private key (PROTOCOL.key)."""
    text = private_key.strip()
    if not text.startswith(_OPENSSH_PRIVATE) or not text.endswith(_OPENSSH_END):
        raise KeyConversionError("not an OpenSSH private key")
    body = "".join(text[len(_OPENSSH_PRIVATE) : -len(_OPENSSH_END)].split())
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConversionError("the key is not valid base64") from None
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        raise KeyConversionError("not an openssh-key-v1 key")
    rest = data[len(magic) :]
    cipher, rest = _take_rest(rest)
    kdf, rest = _take_rest(rest)
    _options, rest = _take_rest(rest)
    if cipher != b"none" or kdf != b"none":
        raise KeyConversionError("the key is protected by a passphrase")
    if len(rest) < 4:
        raise KeyConversionError("truncated key")
    count, rest = struct.unpack(">I", rest[:4])[0], rest[4:]
    if count != 1:
        raise KeyConversionError("one key expected")
    _public, rest = _take_rest(rest)
    private, _ = _take_rest(rest)
    # checkint, checkint, keytype, public key, private key (seed || public), comment, padding
    if private[:4] != private[4:8]:
        raise KeyConversionError("corrupt key (check integers differ)")
    fields = private[8:]
    key_type, fields = _take_rest(fields)
    if key_type != b"ssh-ed25519":
        raise KeyConversionError("not an ed25519 key")
    _pub, fields = _take_rest(fields)
    secret, _ = _take_rest(fields)
    if len(secret) != 64:
        raise KeyConversionError("corrupt ed25519 key")
    return secret[:32]


def _take_rest(data: bytes) -> tuple[bytes, bytes]:
    if len(data) < 4:
        raise KeyConversionError("truncated key")
    (length,) = struct.unpack(">I", data[:4])
    if 4 + length > len(data):
        raise KeyConversionError("truncated key")
    return data[4 : 4 + length], data[4 + length :]


def ssh_private_to_age(private_key: str) -> str:
    """The age identity of an OpenSSH ed25519 private key, as sops-install-secrets derives it
    (`AGE-SECRET-KEY-1...`). For tests and for an administrator who decrypts with an SSH key."""
    scalar = hashlib.sha512(ed25519_seed(private_key)).digest()[:32]
    return bech32_encode(IDENTITY_HRP, scalar).upper()
