"""`[ceph]`: Ceph client for RBD and CephFS (translated by the ceph capability)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kvmfleet.model.types import AbsolutePath, Endpoint, Model, SecretFile, Uuid, matching

CephId = Annotated[
    str,
    matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        "a Ceph client or file system name (letters, digits, '-', '_', '.')",
        "Ceph name",
    ),
]


class CephFsMount(Model):
    mountpoint: AbsolutePath = Field(description="Where it is mounted on the host.")
    path: AbsolutePath = Field(default="/", description="Directory inside the file system.")
    fs_name: CephId | None = Field(
        default=None, description="File system name (default: the cluster's default)."
    )


class Ceph(Model):
    fsid: Uuid = Field(description="Cluster fsid.")
    monitors: list[Endpoint] = Field(
        min_length=1, description='Monitor addresses, "[v6]:6789" or "v4:6789".'
    )
    client: CephId = Field(description="Client id (client.<id>).")
    keyring_file: SecretFile = Field(
        description="Keyring path on the host, provisioned out of band."
    )
    cephfs: list[CephFsMount] = Field(default=[], description="CephFS mounts.")
