"""`[ceph]`: Ceph client for RBD and CephFS (translated by the ceph capability)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from kvmfleet.model.types import AbsolutePath, Endpoint, Model, SecretFile, Uuid
from kvmfleet.problems import quote

_CEPH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def _ceph_id(value: str) -> str:
    if not _CEPH_ID.match(value):
        raise ValueError(
            f"{quote(value)} is not a Ceph client or file system name (letters, digits, '-', '_', '.')"
        )
    return value


CephId = Annotated[str, AfterValidator(_ceph_id)]


class CephFsMount(Model):
    mountpoint: AbsolutePath
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
    cephfs: list[CephFsMount] = Field(default=[])
