# One stdlib-only Python program of this repository (pkgs/<name>/<module>.py), installed as the
# command <name>. Its tests are the repository's pytest suite; the install check only proves that
# the installed command starts with the packaged Python.
{
  lib,
  stdenvNoCC,
  python3,
}:
{
  name,
  script,
  description,
}:
stdenvNoCC.mkDerivation {
  pname = name;
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = dirOf script;
    fileset = script;
  };

  # patchShebangs points the script's `#!/usr/bin/env python3` at this Python.
  buildInputs = [ python3 ];

  installPhase = ''
    runHook preInstall
    install -Dm755 ${baseNameOf script} $out/bin/${name}
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/${name} --help >/dev/null
    runHook postInstallCheck
  '';

  meta = {
    inherit description;
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = name;
  };
}
