# services.iscsi-ifaces: iSCSI sessions bound to network interfaces, one per
# open-iscsi iface (`iface.net_ifacename`), for dm-multipath over several NICs.
# nixpkgs' services.openiscsi runs iscsid but knows no ifaces; this adds a
# oneshot unit running iscsi-ifaces (pkgs/iscsi-ifaces), which creates or
# updates the ifaces, discovers each target through them, sets the session
# settings and logs in, changing only what differs. A NixOS module of its own:
# it works without kvmfleet.
#
# Unit ordering and lifecycle:
# - after iscsid (socket and service) and network-online.target, before
#   remote-fs-pre.target: filesystems on the LUNs mount after the login, and at
#   shutdown they are unmounted, then the sessions logged out (ExecStop), then
#   iscsid and the network go down (stop order is the reverse of start order);
# - `nixos-rebuild switch` never logs out live sessions: NixOS stops and starts
#   a changed unit, so reloadIfChanged makes every change a reload, which runs
#   the same idempotent login with the new settings (new targets, ifaces and
#   settings apply, replacementTimeout to the live sessions too; a target
#   removed from the configuration stays logged in until
#   `iscsiadm -m session -r SID -u` or a reboot);
# - one path missing (a NIC down, a cable out) is degraded, not failed: the
#   unit succeeds once every target has a session, logs each missing path, and
#   iscsi-ifaces-paths.service logs them in when they come back (its status
#   lists what is still missing); a start with a target that has no session at
#   all (SAN not reachable yet) fails and is retried every 30 s. loginTimeout
#   and loginRetries bound how long a dead path delays boot;
# - iscsid.socket is wanted, not required: a restart of the socket must not
#   stop this unit, whose stop logs out every session;
# - not combined with services.openiscsi.enableAutoLoginOut: its iscsi.service
#   logs in to every automatic node through any iface and logs out all of them.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.iscsi-ifaces;

  configFile = pkgs.writeText "iscsi-ifaces.json" (
    builtins.toJSON {
      ifaces = lib.mapAttrs (_: iface: { inherit (iface) interface; }) cfg.ifaces;
      targets = map (target: {
        inherit (target)
          portal
          ifaces
          target
          chapSecretFile
          ;
      }) cfg.targets;
      nodeSettings = {
        "node.session.timeo.replacement_timeout" = cfg.replacementTimeout;
        "node.conn[0].timeo.login_timeout" = cfg.loginTimeout;
        "node.session.initial_login_retry_max" = cfg.loginRetries;
      }
      // cfg.extraNodeSettings;
      discoverySettings = {
        "discovery.sendtargets.timeo.login_timeout" = cfg.loginTimeout;
        # attempts = reopen_max + 1 (open-iscsi usr/discovery.c)
        "discovery.sendtargets.reopen_max" = cfg.loginRetries - 1;
      };
    }
  );
  run = action: "${lib.getExe cfg.package} --config ${configFile} ${action}";
  startRetries = "${config.systemd.package}/bin/systemctl start --no-block iscsi-ifaces-paths.service";

  ifaceNames = lib.attrNames cfg.ifaces;
  undeclared = lib.concatMap (
    target: map (iface: "${target.portal}: ${iface}") (lib.subtractLists ifaceNames target.ifaces)
  ) cfg.targets;
  interfaces = lib.mapAttrsToList (_: iface: iface.interface) cfg.ifaces;
  sharedInterfaces = lib.unique (lib.filter (i: lib.count (j: j == i) interfaces > 1) interfaces);
  storeSecrets = lib.filter (
    target: target.chapSecretFile != null && lib.hasPrefix builtins.storeDir target.chapSecretFile
  ) cfg.targets;
in
{
  options.services.iscsi-ifaces = {
    enable = lib.mkEnableOption "iSCSI sessions through open-iscsi ifaces bound to network interfaces";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/iscsi-ifaces/package.nix {
        openiscsi = config.services.openiscsi.package;
      };
      defaultText = lib.literalMD "iscsi-ifaces from this repository, with `services.openiscsi.package`";
      description = "The iscsi-ifaces program.";
    };

    ifaces = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.interface = mkOption {
            type = types.strMatching "[^/[:space:]]{1,15}";
            example = "san0";
            description = "Network interface the iface's sessions use (`iface.net_ifacename`).";
          };
        }
      );
      default = { };
      example = {
        ieth0.interface = "san0";
        ieth1.interface = "san1";
      };
      description = "open-iscsi ifaces (iSCSI name -> network interface), one session per target each.";
    };

    targets = mkOption {
      type = types.listOf (
        types.submodule {
          options = {
            portal = mkOption {
              type = types.str;
              example = "10.1.0.100:3260";
              description = "SendTargets discovery portal, `address:port` (IPv6 as `[address]:port`).";
            };
            ifaces = mkOption {
              type = types.nonEmptyListOf types.str;
              example = [
                "ieth0"
                "ieth1"
              ];
              description = "Ifaces to discover and log in through (one session each).";
            };
            target = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Log in to this target only (default: every target the portal offers).";
            };
            chapSecretFile = mkOption {
              type = types.nullOr (types.strMatching "/.+");
              default = null;
              example = "/run/keys/iscsi-chap";
              description = ''
                File with CHAP credentials for discovery and sessions, read at run time (never
                copied to the Nix store): `username = …` and `password = …` lines, and for mutual
                CHAP `username_in = …` and `password_in = …`. Passwords reach iscsiadm as
                arguments, briefly visible to local users in the process list.
              '';
            };
          };
        }
      );
      default = [ ];
      description = "Targets to discover and log in to.";
    };

    replacementTimeout = mkOption {
      type = types.ints.between 1 600;
      default = 15;
      description = ''
        `node.session.timeo.replacement_timeout` in seconds: how long a broken session holds
        I/O before failing it upwards. open-iscsi's 120 s stalls I/O that dm-multipath should
        move to another path; with multipath, keep it short (queueing when all paths are gone is
        multipath's `no_path_retry`). A change reaches the live sessions at the next reload (their
        sysfs `recovery_tmo`); iscsid itself keeps the value a session logged in with and sets it
        again when it reconnects the session after a path failure, until the session logs in anew
        or iscsid restarts (then it rereads the node record): the next reload or retry corrects it.
      '';
    };

    loginTimeout = mkOption {
      type = types.ints.between 1 300;
      default = 15;
      description = ''
        Seconds one connection attempt may take, in discovery
        (`discovery.sendtargets.timeo.login_timeout`) and login (`node.conn[0].timeo.login_timeout`);
        open-iscsi's default.
      '';
    };

    loginRetries = mkOption {
      type = types.ints.between 1 20;
      default = 2;
      description = ''
        Connection attempts per discovery (`discovery.sendtargets.reopen_max` + 1) and per login
        (`node.session.initial_login_retry_max`; open-iscsi: 6 and 8). With `loginTimeout` it
        bounds how long a dead path delays a start (about loginRetries × loginTimeout per iface
        and portal); the missing path is then retried in the background.
      '';
    };

    retryInterval = mkOption {
      type = types.ints.between 1 3600;
      default = 30;
      description = "Seconds between two attempts to log in the missing paths.";
    };

    extraNodeSettings = mkOption {
      type = types.attrsOf (
        types.oneOf [
          types.str
          types.int
        ]
      );
      default = { };
      example = {
        "node.conn[0].timeo.noop_out_interval" = 5;
        "node.conn[0].timeo.noop_out_timeout" = 5;
      };
      description = "Further node record settings (`iscsiadm -m node -o update -n KEY -v VALUE`).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = config.services.openiscsi.enable;
        message = "services.iscsi-ifaces needs services.openiscsi.enable (iscsid, the initiator name).";
      }
      {
        assertion = !config.services.openiscsi.enableAutoLoginOut;
        message = "services.iscsi-ifaces cannot be combined with services.openiscsi.enableAutoLoginOut, whose iscsi.service logs in to every node and out of every session.";
      }
      {
        assertion = undeclared == [ ];
        message = "services.iscsi-ifaces.targets use undeclared ifaces: ${lib.concatStringsSep ", " undeclared}.";
      }
      {
        assertion = sharedInterfaces == [ ];
        message = "services.iscsi-ifaces.ifaces: several ifaces on ${lib.concatStringsSep ", " sharedInterfaces} would give one NIC several paths.";
      }
      {
        assertion = storeSecrets == [ ];
        message = "services.iscsi-ifaces.targets.*.chapSecretFile must not be in the Nix store (world-readable).";
      }
    ];

    systemd.services.iscsi-ifaces = {
      description = "iSCSI sessions through bound network interfaces";
      documentation = [ "man:iscsiadm(8)" ];
      wantedBy = [ "remote-fs.target" ];
      # iscsid itself, not only its socket: it creates /etc/iscsi/ifaces when it starts, and
      # `iscsiadm -m iface` does not talk to it.
      # iscsid.socket is wanted, not required: restarting the socket must not stop this unit
      # (its stop logs out every session).
      wants = [
        "network-online.target"
        "remote-fs-pre.target"
        "iscsid.service"
        "iscsid.socket"
      ];
      after = [
        "network-online.target"
        "iscsid.socket"
        "iscsid.service"
      ];
      before = [
        "remote-fs-pre.target"
        "remote-fs.target"
      ];
      reloadIfChanged = true;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = run "start";
        # Paths missing (listed in /run/iscsi-ifaces/missing): iscsi-ifaces-paths logs them in.
        ExecStartPost = startRetries;
        ExecReload = [
          (run "start")
          startRetries
        ];
        ExecStop = run "stop";
        RuntimeDirectory = "iscsi-ifaces";
        RuntimeDirectoryMode = "0700";
        # the list outlives a failed start, for the next one and for iscsi-ifaces-paths
        RuntimeDirectoryPreserve = true;
        # A target without any session (SAN not reachable yet at boot): try again (ExecStop runs
        # only after a successful start, so a retry never logs out the sessions already made).
        Restart = "on-failure";
        RestartSec = "30s";
      };
    };

    # The missing paths of a degraded start, retried until every one has a session; then it
    # ends (iscsid itself reconnects a session that breaks later). Its status names them.
    systemd.services.iscsi-ifaces-paths = {
      description = "iSCSI paths missing from iscsi-ifaces.service, retried";
      documentation = [ "man:iscsiadm(8)" ];
      after = [ "iscsi-ifaces.service" ];
      # stopped with it, and before it at shutdown (no login while it logs out)
      partOf = [ "iscsi-ifaces.service" ];
      serviceConfig = {
        Type = "simple";
        NotifyAccess = "main";
        ExecStart = "${run "retry"} --interval ${toString cfg.retryInterval}";
        Restart = "on-failure";
        RestartSec = "${toString cfg.retryInterval}s";
      };
    };
  };
}
