# bond-macs: keeps each bond's configured MAC through any slave loss (a stdlib-only Python daemon
# on rtnetlink; its tests are tests/test_bond_macs.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
stdenvNoCC.mkDerivation {
  pname = "bond-macs";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = ./bond_macs.py;
  };

  # patchShebangs points the script's `#!/usr/bin/env python3` at this Python.
  buildInputs = [ python3 ];

  installPhase = ''
    runHook preInstall
    install -Dm755 bond_macs.py $out/bin/bond-macs
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/bond-macs --help >/dev/null
    runHook postInstallCheck
  '';

  meta = {
    description = "Keep each Linux bond's configured MAC address when its slaves leave and return";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "bond-macs";
  };
}
