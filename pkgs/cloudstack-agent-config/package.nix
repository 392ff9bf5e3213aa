# The CloudStack agent's configuration tools for NixOS hosts (stdlib Python):
#   cloudstack-agent-config merge   declared keys into agent.properties
#   cloudstack-setup-agent          what the management server runs on Add Host
#   service NAME ACTION             `service cloudstack-agent restart` over SSH
{
  lib,
  stdenvNoCC,
  python3,
}:
stdenvNoCC.mkDerivation {
  pname = "cloudstack-agent-config";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ./.;
    fileset = ./cloudstack_agent_config.py;
  };

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall
    install -Dm755 cloudstack_agent_config.py $out/libexec/cloudstack-agent-config
    substituteInPlace $out/libexec/cloudstack-agent-config \
      --replace-fail "#!/usr/bin/env python3" "#!${lib.getExe python3}"
    mkdir -p $out/bin
    ln -s ../libexec/cloudstack-agent-config $out/bin/cloudstack-agent-config
    for command in setup:cloudstack-setup-agent service:service; do
      cat > "$out/bin/''${command#*:}" <<SCRIPT
    #!${stdenvNoCC.shell}
    exec $out/libexec/cloudstack-agent-config ''${command%%:*} "\$@"
    SCRIPT
      chmod +x "$out/bin/''${command#*:}"
    done
    runHook postInstall
  '';

  meta = {
    description = "agent.properties merge, cloudstack-setup-agent and service for CloudStack KVM hosts on NixOS";
    license = lib.licenses.asl20;
    mainProgram = "cloudstack-agent-config";
    platforms = lib.platforms.linux;
  };
}
