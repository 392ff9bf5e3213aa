# Secret files from sops-encrypted files in the fleet repository (sops-nix).
#
# kvmfleet.secrets.files maps each secret file a host's consumers read (a
# password hash, a Ceph keyring, a CHAP password) to the key holding it in the
# host's sops file and the owner and mode its consumer needs. Each becomes a
# sops-nix secret whose `path` is that very file: sops-nix writes the decrypted
# value under /run/secrets (a ramfs) and makes the path a symlink to it, so
# the consumers keep reading the paths they always read. A secret read while
# users are created (neededForUsers: password hashes) is decrypted to
# /run/secrets-for-users before NixOS's user activation; sops-nix allows only
# root as its owner and group.
#
# The host decrypts with its own SSH host key (kvmfleet.secrets.hostKeyPath),
# which sops-install-secrets turns into an age X25519 identity. The sops file
# is encrypted for the matching age recipient (and the fleet's admins):
# `kvmfleet secrets edit/updatekeys` keep it so, `kvmfleet secrets check`
# proves it without any private key.
#
# Needs sops-nix's NixOS module (the flake's nixosModules.default and
# nixosModules.secrets import it). The generated host module sets enable and
# files; the flake sets sopsFile to secrets/<host>.yaml.
{
  config,
  lib,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.kvmfleet.secrets;

  fileModule = types.submodule {
    options = {
      key = mkOption {
        type = types.strMatching "[^/].*";
        example = "var/lib/secrets/root.hash";
        description = ''
          Where the value is in the sops file ("/" separates nested keys).
        '';
      };
      owner = mkOption {
        type = types.str;
        default = "root";
        description = "User owning the decrypted file.";
      };
      group = mkOption {
        type = types.str;
        default = "root";
        description = "Group of the decrypted file.";
      };
      mode = mkOption {
        type = types.strMatching "0?[0-7]{3}";
        default = "0400";
        description = "Permissions of the decrypted file.";
      };
      neededForUsers = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Read while users are created (a hashedPasswordFile): decrypted
          before NixOS's user activation. Root-owned only.
        '';
      };
    };
  };

  forUsers = lib.filterAttrs (_: file: file.neededForUsers) cfg.files;
in
{
  options.kvmfleet.secrets = {
    enable = lib.mkEnableOption "secret files decrypted from the host's sops file";

    sopsFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./secrets/kvm01.yaml";
      description = ''
        The host's sops-encrypted YAML file (the flake sets
        secrets/<host>.yaml when it exists).
      '';
    };

    hostKeyPath = mkOption {
      type = types.str;
      default = "/etc/ssh/ssh_host_ed25519_key";
      description = ''
        The SSH ed25519 host key the host decrypts with. Its public half is
        hosts/<host>/ssh_host_ed25519_key.pub in the inventory.
      '';
    };

    files = mkOption {
      type = types.attrsOf fileModule;
      default = { };
      example = {
        "/var/lib/secrets/root.hash" = {
          key = "var/lib/secrets/root.hash";
          neededForUsers = true;
        };
      };
      description = ''
        Secret files by the absolute path their consumer reads.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.sopsFile != null;
        message = "kvmfleet.secrets is enabled but no sops file is set: create it with `kvmfleet secrets edit ${config.networking.hostName}` and `git add` it (flakes see tracked files only).";
      }
    ]
    ++ lib.mapAttrsToList (path: file: {
      # sops-nix's own rule for secrets-for-users, said with the path.
      assertion = file.owner == "root" && file.group == "root";
      message = "kvmfleet.secrets.files.\"${path}\": a secret read while users are created is decrypted before they exist, so only root can own it.";
    }) forUsers
    ++ lib.mapAttrsToList (path: _: {
      assertion = lib.hasPrefix "/" path && !lib.hasPrefix "${builtins.storeDir}/" path;
      message = "kvmfleet.secrets.files.\"${path}\": an absolute path outside the Nix store.";
    }) cfg.files;

    sops = {
      defaultSopsFile = lib.mkIf (cfg.sopsFile != null) cfg.sopsFile;
      # age only: the ed25519 host key, no GnuPG keyring made of the RSA host key.
      age.sshKeyPaths = [ cfg.hostKeyPath ];
      gnupg.sshKeyPaths = [ ];
      secrets = lib.mapAttrs' (
        path: file:
        lib.nameValuePair file.key {
          inherit (file)
            key
            owner
            group
            mode
            neededForUsers
            ;
          inherit path;
        }
      ) cfg.files;
    };
  };
}
