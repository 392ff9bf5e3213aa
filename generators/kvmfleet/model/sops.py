"""`[secrets]`: whether the host's secret files come from its sops file (docs/secrets.md)."""

from __future__ import annotations

from pydantic import Field

from kvmfleet.model.types import Model, SecretFile


class Secrets(Model):
    provision: bool = Field(
        default=True,
        description="Install the host's secret files from secrets/<host>.yaml (sops-nix) when "
        "hosts/<host>/ssh_host_ed25519_key.pub exists; false: every secret file is provisioned "
        "by hand.",
    )
    manual: list[SecretFile] = Field(
        default=[],
        description="Secret files provisioned by hand although the host's others come from its "
        "sops file (each must be a secret file the inventory names).",
    )
