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
    "colmena": (
        "zhaofengli",
        "colmena",
        "5bf4ce6a24adba74a5184f4a9bef01d545a09473",
        "sha256-ypTPb2eKcOBbOoyvPV0j4ZOXs4kayo73/2KI456QnE0=",
        1755272288,
    ),
    # Secrets: its only input is nixpkgs, which follows ours.
    "sops-nix": (
        "Mic92",
        "sops-nix",
        "56b24064fdcaedca53553b1a6d607fd23b613a24",
        "sha256-478kKQBvK6SYTOdN2h9jhKJv94nbXRbFMfuL1WshErg=",
        1782165805,
    ),
}
# colmena's own inputs other than the two nixpkgs it takes from ours (its flake.lock's pins).
COLMENA_INPUTS = {
    "flake-compat": (
        "edolstra",
        "flake-compat",
        "b4a34015c698c7793d592d66adbab377907a2be8",
        "sha256-Z+s0J8/r907g149rllvwhb4pKi8Wam5ij0st8PwAh+E=",
        1650374568,
    ),
    "flake-utils": (
        "numtide",
        "flake-utils",
        "c0e246b9b83f637f4681389ecabcb2681b4f3af0",
        "sha256-zllb8aq3YO3h8B/U0/J1WBgAL8EX5yWf5pMj3G0NAmc=",
        1659877975,
    ),
    "nix-github-actions": (
        "nix-community",
        "nix-github-actions",
        "e04df33f62cdcf93d73e9a04142464753a16db67",
        "sha256-B4mzTcQ0FZHdpeWcpDYPERtyjJd/NIuaQ9+BV1h+MpA=",
        1729742964,
    ),
}


def test_lock_pins_exactly_the_chosen_revisions() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    assert lock["version"] == 7
    assert lock["root"] == "root"
    assert lock["nodes"]["root"]["inputs"] == {name: name for name in PINS}
    assert set(lock["nodes"]) == {"root", *PINS, *COLMENA_INPUTS}
    for name, (owner, repo, rev, nar_hash, modified) in {**PINS, **COLMENA_INPUTS}.items():
        locked = lock["nodes"][name]["locked"]
        assert locked == {
            "lastModified": modified,
            "narHash": nar_hash,
            "owner": owner,
            "repo": repo,
            "rev": rev,
            "type": "github",
        }
        assert lock["nodes"][name]["original"] == {
            "owner": owner,
            "repo": repo,
            "type": "github",
        } | ({"ref": "nixos-26.05"} if name == "nixpkgs" else {})
    assert lock["nodes"]["disko"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert lock["nodes"]["sops-nix"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert lock["nodes"]["colmena"]["inputs"] == {
        "flake-compat": "flake-compat",
        "flake-utils": "flake-utils",
        "nix-github-actions": "nix-github-actions",
        "nixpkgs": ["nixpkgs"],
        "stable": ["nixpkgs"],
    }
    assert lock["nodes"]["flake-compat"]["flake"] is False
    assert lock["nodes"]["nix-github-actions"]["inputs"] == {"nixpkgs": ["colmena", "nixpkgs"]}


def test_flake_inputs_match_the_lock() -> None:
    flake = (REPO / "flake.nix").read_text()
    lock = json.loads((REPO / "flake.lock").read_text())
    urls = dict(re.findall(r'([\w-]+)(?:\.url| = \{\s*url) = "([^"]+)"', flake))
    assert urls == {
        "nixpkgs": "github:NixOS/nixpkgs/nixos-26.05",
        "disko": "github:nix-community/disko",
        "colmena": "github:zhaofengli/colmena",
        "sops-nix": "github:Mic92/sops-nix",
    }
    original = lock["nodes"]["nixpkgs"]["original"]
    assert f"github:{original['owner']}/{original['repo']}/{original['ref']}" == urls["nixpkgs"]
    assert 'inputs.nixpkgs.follows = "nixpkgs"' in flake
    sops = re.search(r"sops-nix = \{([^}]*)\}", flake)
    assert sops is not None and 'inputs.nixpkgs.follows = "nixpkgs"' in sops[1]
    assert 'inputs.stable.follows = "nixpkgs"' in flake
