# services.cloudstack-agent: the Apache CloudStack KVM agent as a NixOS service,
# usable without the rest of kvmfleet.
#
# agent.properties is shared with the management server and the agent, which
# both write to it (GUID, management server list, keystore passphrase, local
# storage ids...). So /etc/cloudstack/agent is a symlink to the mutable
# /var/lib/cloudstack/agent, and before every start the keys declared here are
# merged into agent.properties by a small tested program, which keeps every
# other line as it is. The management server list is seeded: written when
# missing or when the declaration changes, otherwise the list the management
# server sent stays.
#
# The management server reaches into the host by fixed paths: "Add Host" runs
# /usr/share/cloudstack-common/scripts/util/keystore-setup and
# keystore-cert-import, then `cloudstack-setup-agent -m … -z … -a -s …`; other
# flows run `service cloudstack-agent restart`. Those paths and commands exist
# here (see pkgs/cloudstack-agent-config for the last two).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.services.cloudstack-agent;
  libvirtd = config.virtualisation.libvirtd;

  stateDir = "/var/lib/cloudstack/agent";
  share = "${cfg.package}/share";

  declared = {
    set = {
      "port" = toString cfg.port;
      "zone" = cfg.zone;
      "pod" = cfg.pod;
      "cluster" = cfg.cluster;
      "private.network.device" = cfg.privateNic;
      "public.network.device" = cfg.publicNic;
      "guest.network.device" = cfg.guestNic;
      "network.bridge.type" = cfg.bridgeType;
      "hypervisor.type" = "kvm";
      "resource" = "com.cloud.hypervisor.kvm.resource.LibvirtComputingResource";
    }
    // lib.optionalAttrs (cfg.guid != null) { guid = cfg.guid; }
    // cfg.settings;
    seed.host = lib.concatStringsSep "," cfg.managementServers;
  };
  declaredFile = pkgs.writeText "cloudstack-agent-declared.json" (builtins.toJSON declared);

  classPath = lib.concatStringsSep ":" [
    "${share}/cloudstack-agent/lib/*"
    "/etc/cloudstack/agent"
    "${share}/cloudstack-common/scripts"
  ];

  # CloudStack's security-group scripts call iptables, ebtables and ipset. The
  # iptables in nixpkgs is the nftables variant, but pkgs.ebtables is the
  # legacy one; the nftables ebtables (from iptables) is put first as `ebtables`.
  netfilterTools = pkgs.runCommand "cloudstack-netfilter-tools" { } ''
    mkdir -p $out/bin
    for tool in ebtables ebtables-save ebtables-restore; do
      for dir in bin sbin; do
        if [ -e ${pkgs.iptables}/$dir/$tool-nft ]; then
          ln -s ${pkgs.iptables}/$dir/$tool-nft $out/bin/$tool
          break
        fi
      done
      [ -e $out/bin/$tool ] || { echo "${pkgs.iptables.name} has no $tool-nft" >&2; exit 1; }
    done
  '';

  # The agent's PATH is data (command = provider), shared with the build-time check of the
  # packaged scripts (pkgs/cloudstack-agent/agent_path.py) and the VM test.
  pathData = builtins.fromTOML (builtins.readFile ../pkgs/cloudstack-agent/path.toml);
  ownProviders = {
    # setuid sudo (the keystore scripts run `sudo`; a sudo from the store refuses to run).
    "@wrappers" = "/run/wrappers";
    "@netfilter" = netfilterTools;
    "@libvirt" = libvirtd.package;
    "@qemu" = libvirtd.qemu.package;
    "@jre" = cfg.package.jre;
    "@python" = cfg.package.python;
    "@config" = cfg.configPackage;
    "@systemd" = config.systemd.package;
  };
  providers = lib.unique (lib.attrValues pathData.commands);
  provider =
    name:
    ownProviders.${name} or (
      if lib.hasPrefix "@" name then
        throw "pkgs/cloudstack-agent/path.toml: unknown provider ${name}"
      else
        pkgs.${name}
    );
  # PATH order: the wrappers' sudo and the nftables ebtables win over any other.
  ownOrder = [
    "@wrappers"
    "@netfilter"
    "@libvirt"
    "@qemu"
    "@jre"
    "@python"
    "@config"
    "@systemd"
  ];
  tools =
    map provider (lib.filter (p: lib.elem p providers) ownOrder)
    ++ map provider (lib.filter (p: !lib.hasPrefix "@" p) providers)
    ++ cfg.extraPath;

  # Each command path.toml promises is in its provider, as the unit's PATH lists them (bin and
  # sbin of each package's bin output); the setuid wrappers exist on a running host only: the VM
  # test looks for those.
  pathCheck =
    pkgs.runCommand "cloudstack-agent-path-check" { nativeBuildInputs = [ pkgs.python3 ]; }
      ''
        python3 ${../pkgs/cloudstack-agent/agent_path.py} bins \
          --data ${../pkgs/cloudstack-agent/path.toml} --except @wrappers \
          ${lib.concatMapStringsSep " " (p: "${lib.getBin p}/bin ${lib.getBin p}/sbin") (
            lib.filter lib.isDerivation tools
          )}
        touch $out
      '';
in
{
  options.services.cloudstack-agent = {
    enable = lib.mkEnableOption "the Apache CloudStack KVM agent";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/cloudstack-agent/package.nix {
        cloudstack-agent-config = cfg.configPackage;
      };
      defaultText = lib.literalExpression "pkgs.callPackage ./pkgs/cloudstack-agent/package.nix { }";
      description = "The CloudStack agent package (jars, scripts, default configuration).";
    };

    configPackage = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/cloudstack-agent-config/package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./pkgs/cloudstack-agent-config/package.nix { }";
      description = "agent.properties merge, cloudstack-setup-agent and the service command.";
    };

    managementServers = mkOption {
      type = types.nonEmptyListOf types.str;
      example = [
        "10.0.10.5"
        "10.0.10.6"
      ];
      description = ''
        Management servers (addresses or host names), agent.properties `host`.
        Seeded: the management server replaces the list with its own, which
        is kept until this option changes.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 8250;
      description = "The management servers' agent port, agent.properties `port`.";
    };

    zone = mkOption {
      type = types.str;
      description = "CloudStack zone id, agent.properties `zone`.";
    };
    pod = mkOption {
      type = types.str;
      description = "CloudStack pod id, agent.properties `pod`.";
    };
    cluster = mkOption {
      type = types.str;
      description = "CloudStack cluster id, agent.properties `cluster`.";
    };

    guid = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        The host's GUID, agent.properties `guid`. "Add Host" passes one derived
        from the host's address (see the kvmfleet README); a different value
        here makes "Add Host" fail. null: whatever Add Host writes.
      '';
    };

    privateNic = mkOption {
      type = types.str;
      default = "cloudbr0";
      description = "Bridge for management traffic, agent.properties `private.network.device`.";
    };
    publicNic = mkOption {
      type = types.str;
      default = cfg.privateNic;
      defaultText = lib.literalExpression "config.services.cloudstack-agent.privateNic";
      description = "Bridge for public traffic, agent.properties `public.network.device`.";
    };
    guestNic = mkOption {
      type = types.str;
      default = cfg.privateNic;
      defaultText = lib.literalExpression "config.services.cloudstack-agent.privateNic";
      description = "Bridge for guest traffic, agent.properties `guest.network.device`.";
    };

    bridgeType = mkOption {
      type = types.enum [
        "native"
        "openvswitch"
      ];
      default = "native";
      description = "agent.properties `network.bridge.type`.";
    };

    settings = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        "host.reserved.mem.mb" = "2048";
      };
      description = ''
        Further agent.properties keys, set on every start (the options above
        win for their own keys).
      '';
    };

    jnaLibraries = mkOption {
      type = types.listOf types.package;
      default = [ libvirtd.package ];
      defaultText = lib.literalExpression "[ config.virtualisation.libvirtd.package ]";
      description = ''
        Libraries the agent loads through JNA (libvirt; librados/librbd for
        Ceph RBD primary storage): their lib/ directories form jna.library.path.
      '';
    };

    extraPath = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "More commands on the agent's PATH (e.g. rbd for Ceph).";
    };

    javaOptions = mkOption {
      type = types.listOf types.str;
      default = [
        "-Xms256m"
        "-Xmx2048m"
      ];
      description = "JVM options of the agent.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.all (p: !lib.hasPrefix "@" p || lib.elem p ownOrder) providers;
        message = "pkgs/cloudstack-agent/path.toml names a provider the module does not know (one of ${lib.concatStringsSep ", " ownOrder})";
      }
    ];
    system.checks = [ pathCheck ];
    # keystore-setup and keystore-cert-import run `sudo` (as root; the management server may log
    # in as another user).
    security.sudo.enable = lib.mkDefault true;

    virtualisation.libvirtd.enable = true;
    # CloudStack's qemu hook (what Debian installs as /etc/libvirt/hooks/qemu): on an incoming
    # migration it renames bridges to this host's, and it runs the scripts of hooks/custom.
    virtualisation.libvirtd.hooks.qemu.cloudstack = "${share}/cloudstack-agent/lib/libvirtqemuhook";

    # The management server calls these by name over SSH.
    environment.systemPackages = [
      cfg.configPackage
      netfilterTools
    ];

    # The management server's SSH client (trilead) speaks only the non-ETM
    # MACs; NixOS allows ETM ones only by default.
    services.openssh.settings.Macs = [
      "hmac-sha2-512-etm@openssh.com"
      "hmac-sha2-256-etm@openssh.com"
      "umac-128-etm@openssh.com"
      "hmac-sha2-512"
      "hmac-sha2-256"
    ];

    environment.etc = {
      "cloudstack/agent".source = stateDir;
      "cloudstack/agent-declared.json".source = declaredFile;
    };

    systemd.tmpfiles.rules = [
      "d ${stateDir} 0700 root root - -"
      # Group-only, as upstream's packages make it (packaging/el8/cloud.spec: chmod 770): the
      # agent logs command lines at debug level.
      "d /var/log/cloudstack/agent 0770 root root - -"
      # The agent's local.storage.path default, registered as the host's local pool on Add Host;
      # 0711 root as libvirt's packages create it (Debian's libvirt-daemon-system postinst).
      "d /var/lib/libvirt/images 0711 root root - -"
      # Upstream's fixed paths (Java code, scripts, the management server).
      "L+ /usr/share/cloudstack-agent - - - - ${share}/cloudstack-agent"
      "L+ /usr/share/cloudstack-common - - - - ${share}/cloudstack-common"
      # Files only the package changes.
      "L+ ${stateDir}/environment.properties - - - - ${share}/cloudstack-agent/conf/environment.properties"
      "L+ ${stateDir}/log4j-cloud.xml - - - - ${share}/cloudstack-agent/conf/log4j-cloud.xml"
      "L+ ${stateDir}/uefi.properties - - - - ${share}/cloudstack-agent/conf/uefi.properties"
      # keystore-cert-import links libvirt's TLS files here (libvirt's sysconfdir is /var/lib).
      "d /var/lib/pki/CA 0755 root root - -"
      "d /var/lib/pki/libvirt/private 0700 root root - -"
    ];

    systemd.services.cloudstack-agent = {
      description = "Apache CloudStack KVM agent";
      documentation = [ "https://docs.cloudstack.apache.org/" ];
      wantedBy = [ "multi-user.target" ];
      wants = [
        "libvirtd.service"
        "network-online.target"
      ];
      after = [
        "libvirtd.service"
        "network-online.target"
        "systemd-tmpfiles-setup.service"
      ];
      path = tools;
      environment.JAVA_HOME = "${cfg.package.jre}";
      serviceConfig = {
        Type = "simple";
        ExecStartPre = utils.escapeSystemdExecArgs [
          (lib.getExe cfg.configPackage)
          "merge"
          "--properties"
          "${stateDir}/agent.properties"
          "--declared"
          declaredFile
          "--template"
          "${share}/cloudstack-agent/conf/agent.properties"
        ];
        ExecStart = utils.escapeSystemdExecArgs (
          [ "${cfg.package.jre}/bin/java" ]
          ++ cfg.javaOptions
          ++ [
            "-Djna.library.path=${lib.makeLibraryPath cfg.jnaLibraries}"
            "-Djava.io.tmpdir=/var/cache/cloudstack/agent"
            "-cp"
            classPath
            "com.cloud.agent.AgentShell"
          ]
        );
        CacheDirectory = "cloudstack/agent";
        Restart = "always";
        RestartSec = "10s";
      };
    };
  };
}
