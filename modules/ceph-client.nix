# Ceph client support beyond what nixpkgs' services.ceph does (that module only
# writes /etc/ceph/ceph.conf):
#
# - services.ceph-client.keyrings.<id>.file: the keyring of client.<id>, kept
#   outside the Nix store and provisioned out of band, is installed at boot as
#   /etc/ceph/ceph.client.<id>.keyring (root, 0600), where librados, rbd,
#   qemu-img and mount.ceph look for it, by ceph-keyring-<id>.service. That
#   unit fails, naming the file, when the file is missing (and then removes a
#   stale copy, so that a revoked key does not linger in /etc). The keyring of
#   a client no longer configured is removed at the next activation (switch or
#   boot; ceph-keyrings-prune.sh): each install leaves a marker in
#   /var/lib/ceph-client/keyrings, so keyrings put into /etc/ceph by hand are
#   never touched (nor those installed before the markers existed).
# - the ceph CLI tools (rbd, ceph, rados, mount.ceph);
# - for every `fileSystems.<path>.fsType = "ceph"`: mount.ceph for mount(8)
#   and cephfs-du; the mount, by client <id> (the device's "<id>@..." or a
#   "name=<id>" option), wants ceph-keyring-<id>.service and is ordered after
#   it, so each mount attempt (an automount's too) installs a key provisioned
#   meanwhile. mount.ceph reads the key from the installed keyring itself.
# - services.ceph-client.libvirt.enable: libvirt and QEMU built with RBD
#   support, so that VM disks can live in Ceph pools. nixpkgs' binary cache
#   has neither build: they are compiled locally.
#
# Usable without kvmfleet; kvmfleet's generated host modules set these options
# together with services.ceph and fileSystems.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.services.ceph-client;

  cephMounts = lib.filter (fs: fs.fsType == "ceph") (lib.attrValues config.fileSystems);
  # the client a CephFS mount authenticates as: "<id>@<fsid>.<fs>=/path", or
  # the old syntax's name=<id> option
  mountClient =
    fs:
    let
      user = builtins.match "([^@/:]+)@.*" fs.device;
      names = lib.filter (o: lib.hasPrefix "name=" o) fs.options;
    in
    if user != null then
      lib.head user
    else if names != [ ] then
      lib.removePrefix "name=" (lib.last names)
    else
      null;
  mountUnitsOf =
    id:
    map (fs: "${utils.escapeSystemdPath fs.mountPoint}.mount") (
      lib.filter (fs: mountClient fs == id) cephMounts
    );
  cephfsDu = pkgs.callPackage ../pkgs/cephfs-du/package.nix { };

  keyringFile = id: "/etc/ceph/ceph.client.${id}.keyring";
  markerDir = "/var/lib/ceph-client/keyrings";

  keyringService = id: keyring: {
    "ceph-keyring-${id}" = {
      description = "Ceph keyring of client.${id} (from ${keyring.file})";
      wantedBy = [ "multi-user.target" ] ++ mountUnitsOf id;
      before = mountUnitsOf id;
      # the secret may live on a file system of its own
      unitConfig.RequiresMountsFor = [ (dirOf keyring.file) ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      path = [ pkgs.coreutils ];
      script = ''
        src=${lib.escapeShellArg keyring.file}
        dst=${lib.escapeShellArg (keyringFile id)}
        if [ ! -f "$src" ]; then
          rm -f "$dst"
          echo "the keyring of client.${id} is missing: $src does not exist (provision it on this host, then: systemctl restart ceph-keyring-${id})" >&2
          exit 1
        fi
        install -D -m 0600 -o root -g root "$src" "$dst.tmp"
        mv -f "$dst.tmp" "$dst"
        # installed by this module: removed once client.${id} is no longer configured
        mkdir -p ${markerDir}
        touch ${markerDir}/${id}
      '';
    };
  };

  keyringModule = types.submodule {
    options.file = mkOption {
      type = types.strMatching "/.*";
      example = "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring";
      description = ''
        Absolute path of the keyring file on the host (provisioned out of
        band, never in the Nix store: it holds the client's secret key).
      '';
    };
  };
in
{
  options.services.ceph-client = {
    enable = lib.mkEnableOption "the Ceph client tools and keyrings";

    package = lib.mkPackageOption pkgs "ceph-client" { };

    keyrings = mkOption {
      type = types.attrsOf keyringModule;
      default = { };
      example = {
        cloudstack.file = "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring";
      };
      description = ''
        Keyrings by client id: each file is installed as
        /etc/ceph/ceph.client.<id>.keyring (root, mode 0600) at boot by
        ceph-keyring-<id>.service, which fails naming the file when it is
        missing.
      '';
    };

    libvirt.enable = lib.mkEnableOption ''
      libvirt and QEMU with Ceph RBD support (virtualisation.libvirtd.package
      and virtualisation.libvirtd.qemu.package; QEMU for the host's
      architecture only). Both are built locally: nixpkgs' cache has neither
    '';
  };

  config = lib.mkMerge [
    # Also when the module is off: the keyrings of its last clients go then.
    {
      system.activationScripts.ceph-keyrings-prune = ''
        ${pkgs.runtimeShell} ${./ceph-keyrings-prune.sh} ${lib.escapeShellArgs (lib.optionals cfg.enable (lib.attrNames cfg.keyrings))}
      '';
    }

    (lib.mkIf cfg.enable {
      assertions = lib.concatLists (
        lib.mapAttrsToList (id: keyring: [
          {
            assertion = !lib.hasPrefix "${builtins.storeDir}/" keyring.file;
            message = "services.ceph-client.keyrings.${id}.file is in the Nix store, which every user can read: keep the keyring outside it.";
          }
          {
            # the id becomes part of a unit name and a file name
            assertion = builtins.match "[A-Za-z0-9][A-Za-z0-9_.-]*" id != null;
            message = "services.ceph-client.keyrings.${id}: a Ceph client id has only letters, digits, '-', '_' and '.'.";
          }
        ]) cfg.keyrings
      );

      environment.systemPackages = [ cfg.package ];
      systemd.services = lib.mkMerge (lib.mapAttrsToList keyringService cfg.keyrings);
    })

    (lib.mkIf cfg.libvirt.enable {
      virtualisation.libvirtd.package = pkgs.libvirt.override { enableCeph = true; };
      virtualisation.libvirtd.qemu.package = pkgs.qemu_kvm.override { cephSupport = true; };
    })

    # mount(8) finds helpers in /run/current-system/sw/bin, where system.fsPackages go.
    (lib.mkIf (cephMounts != [ ]) {
      system.fsPackages = [ cfg.package ];
      environment.systemPackages = [ cephfsDu ];
    })
  ];
}
