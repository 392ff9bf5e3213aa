# battery-thresholds: sets ThinkPad charge thresholds through tpacpi-bat or the kernel's
# natacpi sysfs files (a stdlib-only Python script; its tests are tests/test_battery_thresholds.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
stdenvNoCC.mkDerivation {
  pname = "battery-thresholds";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = ./battery_thresholds.py;
  };

  # patchShebangs points the script's `#!/usr/bin/env python3` at this Python.
  buildInputs = [ python3 ];

  installPhase = ''
    runHook preInstall
    install -Dm755 battery_thresholds.py $out/bin/battery-thresholds
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/battery-thresholds --help >/dev/null
    runHook postInstallCheck
  '';

  meta = {
    description = "Set ThinkPad battery charge thresholds through tpacpi-bat or natacpi sysfs";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "battery-thresholds";
  };
}
