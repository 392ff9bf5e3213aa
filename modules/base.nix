# What every kvmfleet host shares, and the options through which the generated,
# pure-data host modules (hosts/<name>/generated.nix) choose what needs pkgs or
# logic: the kernel, extra packages by name, which networks are trusted.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkDefault mkOption types;

  cfg = config.kvmfleet;
  # Every host that is not a laptop is a server: it stays put on networks it trusts.
  isServer = !(lib.elem "laptop" cfg.roles);
  fw = cfg.firewall;
  ssh = config.services.openssh;

  # pkgs.linuxPackages_6_12 is an alias of linuxKernel.vanillaPackages.linux_6_12.
  # Removed series are throwing aliases, hence tryEval.
  kernels = pkgs.linuxKernel.vanillaPackages;
  isSeries =
    attr:
    builtins.match "linux_[0-9]+_[0-9]+" attr != null
    && kernels ? ${attr}
    && (builtins.tryEval (kernels.${attr} ? kernel)).value;
  kernelAttr = "linux_" + lib.replaceStrings [ "." ] [ "_" ] cfg.kernel;

  # kvmfleet.kernel -> a kernel package set, or null when this nixpkgs has none.
  kernelPackages =
    if cfg.kernel == "lts" then
      pkgs.linuxPackages
    else if cfg.kernel == "latest" then
      pkgs.linuxPackages_latest
    else if builtins.match "[0-9]+\\.[0-9]+" cfg.kernel != null && isSeries kernelAttr then
      kernels.${kernelAttr}
    else
      null;

  # "linux_6_12" -> "6.12", for the error message
  seriesVersion = lib.replaceStrings [ "linux_" "_" ] [ "" "." ];
  seriesVersions = map seriesVersion (lib.filter isSeries (lib.attrNames kernels));
  kernelVersions = lib.sort lib.versionOlder seriesVersions;

  # "python3Packages.requests" -> that derivation, or null when nixpkgs has none
  # (missing, a throwing alias of a removed package, or not a package at all).
  findPackage =
    name:
    let
      value = lib.attrByPath (lib.splitString "." name) null pkgs;
      found = builtins.tryEval (if lib.isDerivation value then value else null);
    in
    if found.success then found.value else null;
  extraPackages = map (name: {
    inherit name;
    package = findPackage name;
  }) cfg.extraPackages;

  # nftables rules: the trusted ports, from the trusted networks of one family.
  nftSet = items: "{ ${lib.concatStringsSep ", " items} }";
  portSet =
    ports: ranges:
    map toString (lib.unique (lib.sort lib.lessThan ports))
    ++ map (r: "${toString r.from}-${toString r.to}") ranges;
  portRanges = fw.trustedTCPPortRanges ++ fw.trustedUDPPortRanges;
  tcpSet = portSet fw.trustedTCPPorts fw.trustedTCPPortRanges;
  udpSet = portSet fw.trustedUDPPorts fw.trustedUDPPortRanges;
  rulesFor =
    family: networks:
    let
      from = "${family} saddr ${nftSet networks}";
    in
    # no line at all without networks or ports
    lib.optionals (networks != [ ]) (
      lib.optional (tcpSet != [ ]) "${from} tcp dport ${nftSet tcpSet} accept"
      ++ lib.optional (udpSet != [ ]) "${from} udp dport ${nftSet udpSet} accept"
    );
  isIPv6 = lib.hasInfix ":";
  trustedRules =
    rulesFor "ip" (lib.filter (net: !isIPv6 net) fw.trustedNetworks)
    ++ rulesFor "ip6" (lib.filter isIPv6 fw.trustedNetworks);

  ipv4 = "([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,2})?";
  ipv6 = "[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/[0-9]{1,3})?";
  network = lib.mkOptionType {
    name = "network";
    description = "IPv4 or IPv6 network in CIDR notation";
    check = net: lib.isString net && builtins.match "${ipv4}|${ipv6}" net != null;
    merge = lib.mergeEqualOption;
  };
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
  trustedPorts =
    type: what:
    mkOption {
      type = types.listOf type;
      default = [ ];
      description = "${what} reachable from the trusted networks (from everyone without any).";
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
      trustedTCPPorts = trustedPorts types.port "TCP ports";
      trustedUDPPorts = trustedPorts types.port "UDP ports";
      trustedTCPPortRanges = trustedPorts portRange "TCP port ranges";
      trustedUDPPortRanges = trustedPorts portRange "UDP port ranges";
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = kernelPackages != null;
          message =
            ''kvmfleet.kernel: no kernel "${cfg.kernel}" in this nixpkgs; ''
            + ''use "lts", "latest" or one of ${lib.concatStringsSep ", " kernelVersions}'';
        }
        {
          assertion = fw.trustedNetworks != [ ] -> config.networking.firewall.backend == "nftables";
          message = "kvmfleet.firewall.trustedNetworks needs the nftables firewall backend";
        }
        {
          assertion = lib.all (r: r.from <= r.to) portRanges;
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

      # Firewall on unless the inventory says `[firewall] enable = false` (warned about);
      # nftables, so that ports can be limited to source networks.
      networking.firewall.enable = mkDefault true;
      networking.nftables.enable = mkDefault true;

      # SSH with keys only. Its ports go through kvmfleet.firewall: reachable from
      # the trusted networks only, or from everyone when there are none.
      services.openssh = {
        enable = mkDefault true;
        openFirewall = mkDefault false;
        settings = {
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          # Root logs in with a key (deployment, CloudStack "Add Host"); a host may say "no".
          PermitRootLogin = mkDefault "prohibit-password";
        };
      };
      kvmfleet.firewall.trustedTCPPorts = lib.mkIf ssh.enable ssh.ports;

      # Users and keys come from the inventory only: no password to drift or leak.
      users.mutableUsers = mkDefault false;

      # NICs (bnx2, bnx2x, qed, ...) and Wi-Fi need firmware from linux-firmware, and
      # microcode carries CPU security fixes; enableRedistributableFirmware does not
      # imply microcode. Both microcode images are loaded: the kernel picks the one
      # for its CPU vendor. x86 only: the microcode packages exist for nothing else.
      hardware.enableRedistributableFirmware = mkDefault true;
      hardware.cpu.intel.updateMicrocode = mkDefault pkgs.stdenv.hostPlatform.isx86;
      hardware.cpu.amd.updateMicrocode = mkDefault pkgs.stdenv.hostPlatform.isx86;

      # Hosts are deployed from this flake; a channel would be a second, stale nixpkgs.
      nix.settings.experimental-features = [
        "nix-command"
        "flakes"
      ];
      nix.channel.enable = mkDefault false;

      # Minimal: what a hypervisor runs is declared, not inherited (no perl, rsync,
      # strace by default; no X, which nothing here enables). Man pages stay.
      environment.defaultPackages = mkDefault [ ];
      documentation = {
        doc.enable = mkDefault false;
        info.enable = mkDefault false;
        nixos.enable = mkDefault false;
      };
      # Its database comes with channels only.
      programs.command-not-found.enable = mkDefault false;

      # Laptops roam: iwd associates with Wi-Fi, networkd's default DHCP does the rest.
      networking.wireless.iwd.enable = mkDefault (lib.elem "laptop" cfg.roles);
    }

    (lib.mkIf isServer {
      # Links that networkd does not manage (bridges, VLANs and taps that CloudStack
      # and libvirt create later) take the kernel's defaults: a guest's router could
      # give the host an address and a default route. The "default" keys apply to
      # links created later; "all" would not reach them. networkd handles RAs itself
      # on the links it manages.
      boot.kernel.sysctl = {
        "net.ipv6.conf.default.accept_ra" = mkDefault 0;
        "net.ipv6.conf.default.autoconf" = mkDefault 0;
      };
      # No name resolution by multicast on a server's networks (LLMNR answers and
      # asks on every link, guests' bridges included).
      services.resolved.settings.Resolve.LLMNR = mkDefault false;
    })

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
