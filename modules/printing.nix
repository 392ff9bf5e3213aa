# kvmfleet.printing: fleet glue around NixOS's declarative CUPS printers
# (services.printing + hardware.printers.ensurePrinters), which the generated
# host modules set directly.
#
# What it adds, because of how nixpkgs' ensure-printers unit behaves
# (nixos/modules/hardware/printers.nix): its script runs `lpadmin` for every
# printer under `set -e`, and `lpadmin -m everywhere` asks the printer for its
# capabilities. A laptop away from its printer therefore gets a failed unit,
# which makes switch-to-configuration report failure, and the printers after
# the unreachable one are never set up. With retryUnreachable, each printer is
# set up on its own, the unit succeeds and a transient timer retries the ones
# that failed every few minutes. The nixpkgs module also never deletes a
# printer dropped from the list; removeUndeclared deletes every permanent
# queue that is not declared.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.kvmfleet.printing;
  printers = config.hardware.printers;
  printing = config.services.printing;
  lpadmin = "${pkgs.cups}/bin/lpadmin";

  # "gutenprint" -> that derivation, or null when nixpkgs has none
  findPackage =
    name:
    let
      value = lib.attrByPath (lib.splitString "." name) null pkgs;
      found = builtins.tryEval (if lib.isDerivation value then value else null);
    in
    if found.success then found.value else null;
  drivers = map (name: {
    inherit name;
    package = findPackage name;
  }) cfg.drivers;

  # The same lpadmin arguments as nixpkgs' ensure-printers.
  lpadminArgs =
    p:
    lib.cli.toCommandLineShellGNU { } (
      {
        p = p.name;
        v = p.deviceUri;
        m = p.model;
      }
      // lib.optionalAttrs (p.location != null) { L = p.location; }
      // lib.optionalAttrs (p.description != null) { D = p.description; }
      // lib.optionalAttrs (p.ppdOptions != { }) {
        o = lib.mapAttrsToList (name: value: "${name}=${value}") p.ppdOptions;
      }
    );
  declared = map (p: p.name) printers.ensurePrinters;

  script = ''
    failed=()
    ensure() {
      local name=$1
      shift
      if ! ${lpadmin} "$@"; then
        echo "<4>printer $name: could not be set up now (unreachable, or a driverless printer away?)"
        failed+=("$name")
      fi
    }
    ${lib.concatMapStrings (p: ''
      ensure ${lib.escapeShellArg p.name} ${lpadminArgs p} -E
    '') printers.ensurePrinters}
    ${lib.optionalString (printers.ensureDefaultPrinter != null) ''
      ensure ${lib.escapeShellArg printers.ensureDefaultPrinter} -d ${lib.escapeShellArg printers.ensureDefaultPrinter}
    ''}
    ${lib.optionalString cfg.removeUndeclared ''
      # Permanent queues only (printers.conf), not ones found on the network;
      # CUPS compares queue names without case.
      declared=(${lib.escapeShellArgs declared})
      while read -r queue; do
        keep=0
        for name in "''${declared[@]}"; do
          if [ "''${name,,}" = "''${queue,,}" ]; then keep=1; fi
        done
        if [ "$keep" = 0 ]; then
          echo "removing printer $queue: not in hardware.printers.ensurePrinters"
          ensure "$queue" -x "$queue"
        fi
      done < <(sed -n 's/^<\(Default\)\{0,1\}Printer \(.*\)>$/\2/p' /var/lib/cups/printers.conf 2>/dev/null || true)
    ''}
    if [ "''${#failed[@]}" -gt 0 ]; then
      ${
        if cfg.retryUnreachable then
          ''
            echo "retrying in ${cfg.retryInterval}: ''${failed[*]}"
            # One pending retry at a time (the unit name); the timer and its
            # service unload when done (RemainAfterElapse=no, --collect, and
            # --no-block so that the service does not wait for this script),
            # so the next failure can schedule the next retry.
            systemd-run --on-active=${lib.escapeShellArg cfg.retryInterval} --unit=ensure-printers-retry \
              --timer-property=RemainAfterElapse=no --collect \
              --description="Retry setting up CUPS printers" \
              systemctl --no-block restart ensure-printers.service || true
          ''
        else
          ''
            echo "<3>not set up: ''${failed[*]}"
            exit 1
          ''
      }
    fi
    ${lib.optionalString (
      printing.startWhenNeeded && !printing.stateless
    ) "systemctl stop cups.service"}
  '';
in
{
  options.kvmfleet.printing = {
    drivers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "gutenprint" ];
      description = ''
        CUPS driver packages (services.printing.drivers), as nixpkgs attribute
        paths, for printers whose model is not driverless ("everywhere").
      '';
    };

    retryUnreachable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Set up each printer on its own and retry the ones that fail (a roaming
        laptop away from a driverless printer) instead of failing
        ensure-printers.service and with it the switch.
      '';
    };

    retryInterval = mkOption {
      type = types.str;
      default = "5min";
      description = "How long to wait before retrying printers that failed (systemd time span).";
    };

    removeUndeclared = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Delete CUPS queues that are not in hardware.printers.ensurePrinters
        (also ones added by hand), which nixpkgs never does.
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = map (d: {
        assertion = d.package != null;
        message = ''kvmfleet.printing.drivers: no package "${d.name}" in nixpkgs'';
      }) drivers;
      services.printing.drivers = lib.filter (p: p != null) (map (d: d.package) drivers);
    }

    (lib.mkIf
      (
        (cfg.retryUnreachable || cfg.removeUndeclared) && printers.ensurePrinters != [ ] && printing.enable
      )
      {
        systemd.services.ensure-printers = {
          script = lib.mkForce script;
          path = [
            pkgs.gnused
            config.systemd.package
          ];
        };
      }
    )
  ];
}
