# Where and how a host is rolled out. The generated module sets these from the
# inventory; the flake's colmena hive copies them into colmena's
# deployment.targetHost and deployment.tags (options that exist only in a hive).
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.kvmfleet.deploy = {
    targetHost = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "10.0.10.21";
      description = ''
        Address or name to reach the host by SSH for deployment. Null: the
        host's attribute name, which the flake's colmena hive writes out
        (colmena itself reads a null targetHost as local-only and skips the
        node).
      '';
    };

    tags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "hypervisor"
        "zone-1"
        "pod-1"
        "cluster-1"
      ];
      description = ''
        Deployment tags (`colmena apply --on @cluster-1`): the host's roles and
        its CloudStack zone, pod and cluster.
      '';
    };
  };
}
