# cephfs-du: per-entry recursive usage of a CephFS directory from its ceph.dir.r* attributes
# (a stdlib-only Python script; its tests are tests/test_cephfs_du.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
stdenvNoCC.mkDerivation {
  pname = "cephfs-du";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = ./cephfs_du.py;
  };

  # patchShebangs points the script's `#!/usr/bin/env python3` at this Python.
  buildInputs = [ python3 ];

  installPhase = ''
    runHook preInstall
    install -Dm755 cephfs_du.py $out/bin/cephfs-du
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/cephfs-du --help >/dev/null
    runHook postInstallCheck
  '';

  meta = {
    description = "Recursive size of each entry of a CephFS directory, from CephFS's recursive statistics";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "cephfs-du";
  };
}
