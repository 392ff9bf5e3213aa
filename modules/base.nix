# What every kvmfleet host shares, and the options through which the generated,
# pure-data host modules (hosts/<name>/generated.nix) choose things that need
# pkgs or logic: the kernel, extra packages by name, firewall trust.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkDefault mkOption types;

  cfg = config.kvmfleet;
  fw = cfg.firewall;

  # "6.12" -> "linux_6_12"
  kernelAttr = version: "linux_" + lib.replaceStrings [ "." ] [ "_" ] version;

  # The mainline kernel package sets of this nixpkgs; removed ones are throwing
  # aliases, so each is probed with tryEval. pkgs.linuxPackages_X_Y are aliases of these.
  kernelAvailable =
    attr:
    builtins.match "linux_[0-9]+_[0-9]+" attr != null
    && pkgs.linuxKernel.vanillaPackages ? ${attr}
    && (builtins.tryEval (pkgs.linuxKernel.vanillaPackages.${attr} ? kernel)).value;
  kernelVersions = lib.sort (a: b: builtins.compareVersions a b < 0) (
    map (attr: lib.replaceStrings [ "_" ] [ "." ] (lib.removePrefix "linux_" attr)) (
      builtins.filter kernelAvailable (builtins.attrNames pkgs.linuxKernel.vanillaPackages)
    )
  );

  # kvmfleet.kernel -> a kernel package set, or null when this nixpkgs has none.
  kernelPackages =
    if cfg.kernel == "lts" then
      pkgs.linuxPackages
    else if cfg.kernel == "latest" then
      pkgs.linuxPackages_latest
    else if builtins.match "[0-9]+\\.[0-9]+" cfg.kernel != null && kernelAvailable (kernelAttr cfg.kernel)
    then
      pkgs.linuxKernel.vanillaPackages.${kernelAttr cfg.kernel}
    else
      null;

  # "python3Packages.requests" -> that derivation, or null when nixpkgs has none
  # (missing, a throwing alias of a removed package, or not a package at all).
  findPackage =
    name:
    let
      found = builtins.tryEval (
        let
          value = lib.attrByPath (lib.splitString "." name) null pkgs;
        in
        if lib.isDerivation value then value else null
      );
    in
    if found.success then found.value else null;
  extraPackages = map (name: {
    inherit name;
    package = findPackage name;
  }) cfg.extraPackages;

  # Firewall: trusted ports, accepted only from the trusted networks.
  isIPv6 = net: lib.hasInfix ":" net;
  nftSet = items: "{ ${lib.concatStringsSep ", " items} }";
  portSet =
    ports: ranges:
    map toString (lib.unique (lib.sort lib.lessThan ports))
    ++ map (r: "${toString r.from}-${toString r.to}") ranges;
  tcpSet = portSet fw.trustedTCPPorts fw.trustedTCPPortRanges;
  udpSet = portSet fw.trustedUDPPorts fw.trustedUDPPortRanges;
  # No rule at all for a family without networks or a protocol without ports.
  rulesFor =
    family: networks:
    lib.optionals (networks != [ ]) (
      lib.optional (tcpSet != [ ]) "${family} saddr ${nftSet networks} tcp dport ${nftSet tcpSet} accept"
      ++ lib.optional (udpSet != [ ]) "${family} saddr ${nftSet networks} udp dport ${nftSet udpSet} accept"
    );
  trustedRules =
    rulesFor "ip" (builtins.filter (net: !isIPv6 net) fw.trustedNetworks)
    ++ rulesFor "ip6" (builtins.filter isIPv6 fw.trustedNetworks);

  network = types.strMatching "([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,2})?|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/[0-9]{1,3})?";
  portRange = types.submodule {
    options = {
      from = mkOption {
        type = types.port;
        description = "First port of the range.";
      };
      to = mkOption {
        type = types.port;
        description = "Last port of the range (inclusive).";
      };
    };
  };
  portOption =
    type: description:
    mkOption {
      type = types.listOf type;
      default = [ ];
      inherit description;
    };
in
{
  options.kvmfleet = {
    roles = mkOption {
      type = types.listOf (
        types.enum [
          "hypervisor"
          "laptop"
        ]
      );
      default = [ ];
      description = "What this host is; capability modules switch on by role.";
    };

    kernel = mkOption {
      type = types.str;
      default = "lts";
      example = "6.12";
      description = ''
        Kernel to boot: "lts" (pkgs.linuxPackages), "latest"
        (pkgs.linuxPackages_latest) or a mainline series "X.Y" that this
        nixpkgs still carries (pkgs.linuxPackages_X_Y).
      '';
    };

    extraPackages = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "wget"
        "python3Packages.requests"
      ];
      description = "Extra system packages, as nixpkgs attribute paths.";
    };

    firewall = {
      trustedNetworks = mkOption {
        type = types.listOf network;
        default = [ ];
        example = [
          "10.0.10.0/24"
          "2a00:f10:113:1::/64"
        ];
        description = ''
          IPv4/IPv6 networks (CIDR) from which the trusted ports are reachable.
          Empty: the trusted ports are open to everyone.
        '';
      };
      trustedTCPPorts = portOption types.port "TCP ports reachable from the trusted networks.";
      trustedUDPPorts = portOption types.port "UDP ports reachable from the trusted networks.";
      trustedTCPPortRanges = portOption portRange "TCP port ranges reachable from the trusted networks.";
      trustedUDPPortRanges = portOption portRange "UDP port ranges reachable from the trusted networks.";
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = kernelPackages != null;
          message = ''kvmfleet.kernel: no kernel "${cfg.kernel}" in this nixpkgs; use "lts", "latest" or one of ${lib.concatStringsSep ", " kernelVersions}'';
        }
        {
          assertion = fw.trustedNetworks != [ ] -> config.networking.firewall.backend == "nftables";
          message = "kvmfleet.firewall.trustedNetworks needs the nftables firewall backend";
        }
        {
          assertion = lib.all (r: r.from <= r.to) (fw.trustedTCPPortRanges ++ fw.trustedUDPPortRanges);
          message = "kvmfleet.firewall: a trusted port range has from > to";
        }
      ]
      ++ map (p: {
        assertion = p.package != null;
        message = ''kvmfleet.extraPackages: no package "${p.name}" in nixpkgs'';
      }) extraPackages;

      # The fallback only lets evaluation reach the assertion above.
      boot.kernelPackages = if kernelPackages != null then kernelPackages else pkgs.linuxPackages;

      environment.systemPackages = lib.filter (p: p != null) (map (p: p.package) extraPackages);

      # Firewall always on; nftables so that ports can be limited to source networks.
      networking.firewall.enable = true;
      networking.nftables.enable = true;

      # SSH keys only. Its ports go through kvmfleet.firewall, so with trusted
      # networks SSH is reachable from those only, and from everyone without.
      services.openssh = {
        enable = mkDefault true;
        openFirewall = false;
        settings = {
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          # Root logs in with a key (deployments, CloudStack "Add Host"); a host may say "no".
          PermitRootLogin = mkDefault "prohibit-password";
        };
      };
      kvmfleet.firewall.trustedTCPPorts = lib.mkIf config.services.openssh.enable config.services.openssh.ports;

      # Users and keys come from the inventory only; no password to drift or leak.
      users.mutableUsers = false;

      # Hosts are deployed from this flake; channels would only be a second, stale nixpkgs.
      nix.settings.experimental-features = [
        "nix-command"
        "flakes"
      ];
      nix.channel.enable = mkDefault false;

      # Minimal system: what a hypervisor runs is declared, not inherited.
      environment.defaultPackages = mkDefault [ ];
      documentation = {
        doc.enable = mkDefault false;
        info.enable = mkDefault false;
        nixos.enable = mkDefault false;
      };
      # Its database comes with channels only.
      programs.command-not-found.enable = mkDefault false;
    }

    (lib.mkIf (fw.trustedNetworks == [ ]) {
      networking.firewall = {
        allowedTCPPorts = fw.trustedTCPPorts;
        allowedUDPPorts = fw.trustedUDPPorts;
        allowedTCPPortRanges = fw.trustedTCPPortRanges;
        allowedUDPPortRanges = fw.trustedUDPPortRanges;
      };
    })

    (lib.mkIf (fw.trustedNetworks != [ ]) {
      networking.firewall.extraInputRules = lib.concatLines trustedRules;
    })
  ];
}
