"""flake.lock is hand-written: it must lock exactly the pinned inputs, in Nix's format, matching
flake.nix (what CI's Nix 2.8 cannot check by evaluating the flake)."""

from __future__ import annotations

import json
import re

from conftest import REPO

PINS = {
    "nixpkgs": (
        "NixOS",
        "nixpkgs",
        "fd1462031fdee08f65fd0b4c6b64e22239a77870",
        "sha256-n3gKTBIV4ZA5VQpUakffBe3KGu4+mhPoA34rrqS0GkA=",
        1784432872,
    ),
    "disko": (
        "nix-community",
        "disko",
        "878ec37d6a8f52c6c801d0e2a2ad554c75b9353c",
        "sha256-qWKbLUJpavIpvOdX1fhHYm0WGerytFHRoh9lVck6Bh0=",
        1773506317,
    ),
}


def test_lock_pins_exactly_the_chosen_revisions() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    assert lock["version"] == 7
    assert lock["root"] == "root"
    assert lock["nodes"]["root"]["inputs"] == {name: name for name in PINS}
    assert set(lock["nodes"]) == {"root", *PINS}
    for name, (owner, repo, rev, nar_hash, modified) in PINS.items():
        locked = lock["nodes"][name]["locked"]
        assert locked == {
            "lastModified": modified,
            "narHash": nar_hash,
            "owner": owner,
            "repo": repo,
            "rev": rev,
            "type": "github",
        }
    assert lock["nodes"]["disko"]["inputs"] == {"nixpkgs": ["nixpkgs"]}


def test_flake_inputs_match_the_lock() -> None:
    flake = (REPO / "flake.nix").read_text()
    lock = json.loads((REPO / "flake.lock").read_text())
    urls = dict(re.findall(r'(\w+)(?:\.url| = \{\s*url) = "([^"]+)"', flake))
    assert urls == {
        "nixpkgs": "github:NixOS/nixpkgs/nixos-26.05",
        "disko": "github:nix-community/disko",
    }
    original = lock["nodes"]["nixpkgs"]["original"]
    assert f"github:{original['owner']}/{original['repo']}/{original['ref']}" == urls["nixpkgs"]
    assert 'inputs.nixpkgs.follows = "nixpkgs"' in flake
