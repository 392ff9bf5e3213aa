# services.bond-macs: every listed bond keeps its configured MAC whatever happens
# to its slaves. When a bond's last slave leaves (NICs hot-unplugged, a driver
# reset or reload, `ip link set ... nomaster`) the kernel gives the bond a random
# MAC, and the next slave to be enslaved lends it its own; systemd-networkd sets
# a netdev's MACAddress= only when it creates it or while it is down without
# carrier, so neither `networkctl reconfigure` nor a restart of networkd brings
# the configured MAC back. pkgs/bond-macs listens to the kernel's link
# notifications and sets the configured MAC again as soon as a listed bond has
# another one. The 802.3ad system id is a separate value: set networkd's
# `[Bond] AdActorSystem=` for it (kvmfleet does). A NixOS module of its own: it
# works without kvmfleet.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.bond-macs;
  args = lib.mapAttrsToList (bond: mac: "${bond}=${mac}") cfg.bonds;
in
{
  options.services.bond-macs = {
    enable = lib.mkEnableOption "keeping the configured MAC of bonds whose slaves leave and return";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/bond-macs/package.nix { };
      defaultText = lib.literalMD "bond-macs from this repository";
      description = "The bond-macs program.";
    };

    bonds = mkOption {
      type = types.attrsOf (types.strMatching "[0-9a-f]{2}(:[0-9a-f]{2}){5}");
      default = { };
      example = {
        bond0 = "fe:80:12:04:6d:6f";
      };
      description = ''
        Bond name -> the MAC it must keep (lower case), normally the
        `MACAddress=` of its networkd netdev.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.bonds != { };
        message = "services.bond-macs.bonds is empty";
      }
      {
        assertion = lib.all (name: builtins.match "[A-Za-z0-9_.-]{1,15}" name != null) (
          lib.attrNames cfg.bonds
        );
        message = "services.bond-macs.bonds: interface names are 1-15 letters, digits, '.', '-', '_'";
      }
    ];

    systemd.services.bond-macs = {
      description = "Keep the configured MAC of bonds (${lib.concatStringsSep ", " (lib.attrNames cfg.bonds)})";
      wantedBy = [ "multi-user.target" ];
      # Listening from before networkd creates the bonds is not needed: at start it
      # reads every link once and corrects what is already wrong.
      serviceConfig = {
        ExecStart = lib.escapeShellArgs ([ (lib.getExe cfg.package) ] ++ args);
        Restart = "always";
        RestartSec = "2s";
        # RTM_SETLINK needs CAP_NET_ADMIN and nothing else.
        DynamicUser = true;
        AmbientCapabilities = [ "CAP_NET_ADMIN" ];
        CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];
        RestrictAddressFamilies = [ "AF_NETLINK" ];
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        UMask = "0077";
      };
    };
  };
}
