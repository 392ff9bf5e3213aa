# cephfs-du: per-entry recursive usage of a CephFS directory from its ceph.dir.r* attributes
# (a stdlib-only Python script; its tests are tests/test_cephfs_du.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
import ../host-program.nix { inherit lib stdenvNoCC python3; } {
  name = "cephfs-du";
  script = ./cephfs_du.py;
  description = "Recursive size of each entry of a CephFS directory, from CephFS's recursive statistics";
}
