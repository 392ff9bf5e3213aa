# ruff: noqa: E501  (real keys are long)
"""SSH public keys are checked as sshd reads them: separators, key data, type, size."""

from __future__ import annotations

import base64
import struct

import pytest

from kvmfleet.model.sshkey import check_public_key

# Made with ssh-keygen (the certificates signed by a throwaway CA); the sk-* keys carry real
# Ed25519/P-256 public keys in the security-key layout (ssh-keygen -l accepts them).
KEYS = {
    "ked25519": (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMk9eXSbPqsnIIYlRoXec4q4i4h4I27SZphgEIcSB5RW ced25519"
    ),
    "krsab2048": (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDN2rrmf4yPQWa7JJEMPkycPM+TfT/x/Dr9w1PfxZRYg2PeYLeBiE1rbzJVBMTUsCx3tUraew52OZi1Ur0sUKlh8gGzuQvQDN7ruylEjETBF1joRI2k75e9ioRT4WLn5/wMu2W2FKcbR8cjzXaAPr2R/m3mUKsiA0THc9rofSihbK33qafhcoFpi8hHD/+fCdVwObu6wMoUYNXFLI5AHmpHq/eU8rvvn9Z1dzjtvsIuAylTOhASxP7CqIFuYZlOnoy0nX5/LTm68qCTAJOE2uRS0Y3GOGSZwGnBefllKrdGbeV3n4ONrBIC2k0VvBYh7jM0G9UB1f87YnNovOPOwhkD crsab2048"
    ),
    "krsab1024": (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDIe+c+FVnVgncd+hRtoBwoEJlPgtwUEoymC3sQ2ZIes8sdzKS3+68NtFFx7Pk1DGW1r4gZZR8x+VCOtn5scd6GYvjuctvfg/zIU6wgndweTGQSSg6s29hsjNGXxQ0OjanAXctrp5MWR2bueSvyHKwwW8G6B5unzQEZt1KWrjcpBQ== crsab1024"
    ),
    "kecdsab256": (
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPX3T1lUvoUVVCo7speUpYTcvOClqh4aJLmB2c52Tl9bsy+1geu/I8bN7+Uut5iOWqcu2y8tUA+2p66sJP9wShA= cecdsab256"
    ),
    "kecdsab384": (
        "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBKxob5ADQkfblj0NbsfwPtClEu+elbbCQr9A4ZxzCOmzhHsV06f0Z4QaxSuiU3mjXpoqJL1mNZ85yYai+BpmTiORPxMw0sObkBF/PlA7oYib0i0TZL5KVyx0NJXoq4TSig== cecdsab384"
    ),
    "kecdsab521": (
        "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAB+le6eyLmY8J6SkdZmLaNc7Jx9AAOL7Djm8gbLxSsIn5iNl8rqcLyiV7hYJyfea8JAwMoFQSVogZEoIvhheozkMwGyY+72+PoI9MzyFBjwRywmF0/+GHb9BSB1SAi1KU61q58LUJH53KHbbtQxhVavTFTvqRWU0fbFWZJNt1t4fJpavg== cecdsab521"
    ),
    "ked25519-cert": (
        "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAILQJdQ2WxYUkL+eim8jJYHe/J88zXJ4+u1In4GySq/7BAAAAIMk9eXSbPqsnIIYlRoXec4q4i4h4I27SZphgEIcSB5RWAAAAAAAAAAAAAAABAAAAAmlkAAAACAAAAARyb290AAAAAAAAAAD//////////wAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFnQsCJxx/uLSgVyVsvMZQLua2xQbstN/mepoDuiOnPnAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEDk1Gm2C60BnoA3jNXBsFkisI4apYpUoOS1mraS7Gs1bCPJS2iMQnF9aKRglr4daxrAriBtpMODP4R3jJbDk/gC ced25519"
    ),
    "kecdsab256-cert": (
        "ecdsa-sha2-nistp256-cert-v01@openssh.com AAAAKGVjZHNhLXNoYTItbmlzdHAyNTYtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgq0sp9+GUgQIQNlOaX4FoXfuRuJMcTeO+HAzc59B2fr8AAAAIbmlzdHAyNTYAAABBBPX3T1lUvoUVVCo7speUpYTcvOClqh4aJLmB2c52Tl9bsy+1geu/I8bN7+Uut5iOWqcu2y8tUA+2p66sJP9wShAAAAAAAAAAAAAAAAEAAAACaWQAAAAIAAAABHJvb3QAAAAAAAAAAP//////////AAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgWdCwInHH+4tKBXJWy8xlAu5rbFBuy03+Z6mgO6I6c+cAAABTAAAAC3NzaC1lZDI1NTE5AAAAQEEUsG6BL18FbLx7Jj+V8K9rXW945ADf9477h2O7uP8MBnVz71psNSZ1/PS2eFPorr2YIgUkM5LNlpSaXRqbaQw= cecdsab256"
    ),
    "sk-ed25519": (
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIMk9eXSbPqsnIIYlRoXec4q4i4h4I27SZphgEIcSB5RWAAAABHNzaDo= yubikey"
    ),
    "sk-ecdsa": (
        "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBPX3T1lUvoUVVCo7speUpYTcvOClqh4aJLmB2c52Tl9bsy+1geu/I8bN7+Uut5iOWqcu2y8tUA+2p66sJP9wShAAAAAEc3NoOg== yubikey"
    ),
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_keys_sshd_accepts_are_accepted(name: str) -> None:
    assert check_public_key(KEYS[name]) == KEYS[name]


def test_tabs_and_runs_of_spaces_separate_fields() -> None:
    kind, data, comment = KEYS["ked25519"].split(" ")
    assert check_public_key(f"{kind}\t{data}  {comment} with spaces")


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u3000", "\v", "\f"])
def test_other_white_space_does_not_separate_fields(space: str) -> None:
    kind, data, _ = KEYS["ked25519"].split(" ")
    with pytest.raises(ValueError, match="sshd separates the fields of a key by ASCII spaces"):
        check_public_key(f"{kind}{space}{data}")


def _blob(*parts: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("ssh-ed25519", "ssh-ed25519 key without key data"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519')}", "unusable key data (truncated)"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(31))}", "an Ed25519 key is 32 bytes"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(32), b'x')}", "trailing data"),
        (f"ssh-rsa {_blob(b'ssh-ed25519', bytes(32))}", "the key data is not a ssh-rsa key"),
        ("ssh-rsa " + _blob(b"ssh-rsa", b"\x01\x00\x01", b"\xff" * 64), "512 bits"),
        (
            "ecdsa-sha2-nistp256 "
            + _blob(b"ecdsa-sha2-nistp256", b"nistp384", b"\x04" + bytes(64)),
            "the curve is not nistp256",
        ),
        (
            f"sk-ssh-ed25519@openssh.com {_blob(b'sk-ssh-ed25519@openssh.com', bytes(32), b'web:')}",
            'does not start with "ssh:"',
        ),
        ("ssh-ed25519 AAAA!!!!", "not valid base64"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "is not an SSH public key"),
    ],
)
def test_unusable_keys_are_refused(line: str, why: str) -> None:
    with pytest.raises(ValueError) as exc:
        check_public_key(line)
    assert why in str(exc.value)


def test_krsab1024_is_the_smallest_rsa_key_accepted() -> None:
    assert check_public_key(KEYS["krsab1024"])


def test_a_private_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as exc:
        check_public_key("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA")
    assert "b3BlbnNz" not in str(exc.value)
