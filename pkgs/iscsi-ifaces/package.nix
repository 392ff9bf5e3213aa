# iscsi-ifaces: log in to iSCSI targets through open-iscsi ifaces bound to network interfaces
# (pkgs/iscsi-ifaces/iscsi_ifaces.py, stdlib Python; its tests are the repository's pytest suite).
{
  lib,
  stdenvNoCC,
  makeWrapper,
  python3,
  openiscsi,
}:
stdenvNoCC.mkDerivation {
  pname = "iscsi-ifaces";
  version = "0.1.0";

  src = ./iscsi_ifaces.py;
  dontUnpack = true;

  nativeBuildInputs = [ makeWrapper ];

  # iscsiadm is in open-iscsi's sbin.
  installPhase = ''
    runHook preInstall
    install -Dm644 $src $out/share/iscsi-ifaces/iscsi_ifaces.py
    makeWrapper ${lib.getExe python3} $out/bin/iscsi-ifaces \
      --add-flags "-I $out/share/iscsi-ifaces/iscsi_ifaces.py" \
      --prefix PATH : ${lib.makeSearchPath "sbin" [ openiscsi ]}
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    $out/bin/iscsi-ifaces --help >/dev/null
  '';

  meta = {
    description = "Idempotent iSCSI login through open-iscsi ifaces bound to network interfaces";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
    mainProgram = "iscsi-ifaces";
  };
}
