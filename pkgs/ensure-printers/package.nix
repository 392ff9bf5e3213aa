# ensure-printers: sets up the declared CUPS printers without re-querying a driverless queue
# cupsd already keeps (a stdlib-only Python script; its tests are tests/test_ensure_printers.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
stdenvNoCC.mkDerivation {
  pname = "ensure-printers";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = ./ensure_printers.py;
  };

  # patchShebangs points the script's `#!/usr/bin/env python3` at this Python.
  buildInputs = [ python3 ];

  installPhase = ''
    runHook preInstall
    install -Dm755 ensure_printers.py $out/bin/ensure-printers
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/ensure-printers --help >/dev/null
    runHook postInstallCheck
  '';

  meta = {
    description = "Set up declared CUPS printers without losing a driverless queue that is away";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "ensure-printers";
  };
}
