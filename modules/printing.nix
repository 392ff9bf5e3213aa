# kvmfleet.printing: fleet glue around NixOS's declarative CUPS printers
# (services.printing + hardware.printers.ensurePrinters), which the generated
# host modules set directly.
#
# It replaces the script of nixpkgs' ensure-printers unit
# (nixos/modules/hardware/printers.nix), which runs `lpadmin -p NAME -v URI -m
# MODEL` for every printer at every boot under `set -e`, ordered after cupsd
# only. For a driverless ("everywhere") printer that query goes to the
# printer, and since CUPS 2.4.12 a failed query marks the queue temporary:
# cupsd deletes it, its PPD and held jobs (scheduler/ipp.c). A roaming laptop
# booting away from its printer lost the queue. pkgs/ensure-printers instead
# leaves a driverless queue that cupsd already keeps with the same device URI
# as it is (only location, description and options are set), sets up each
# printer on its own and exits 75 when some could not be set up now. The unit
# is ordered after network-online.target; with retryUnreachable a transient
# timer retries the ones that failed (a queue never created), and the unit
# succeeds, so switch-to-configuration does not report failure. nixpkgs also
# never deletes a printer dropped from the list; removeUndeclared deletes every
# permanent queue that is not declared.
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

  ensurePrinters = pkgs.callPackage ../pkgs/ensure-printers/package.nix { };
  # The declared printers, as the program reads them.
  configFile = pkgs.writeText "ensure-printers.json" (
    builtins.toJSON {
      printers = map (p: {
        inherit (p)
          name
          deviceUri
          model
          location
          description
          ppdOptions
          ;
      }) printers.ensurePrinters;
      defaultPrinter = printers.ensureDefaultPrinter;
      inherit (cfg) removeUndeclared;
    }
  );

  script = ''
    status=0
    ${lib.getExe ensurePrinters} --config ${configFile} --lpadmin ${lpadmin} \
      --printers-conf /var/lib/cups/printers.conf --state /var/lib/kvmfleet-printing/state.json \
      || status=$?
    if [ "$status" = 75 ]; then
      ${
        if cfg.retryUnreachable then
          ''
            echo "retrying in ${cfg.retryInterval}"
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
          "exit 1"
      }
    elif [ "$status" != 0 ]; then
      exit "$status"
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
        Retry the printers that could not be set up now (a driverless queue
        never created while a roaming laptop is away from its printer) every
        retryInterval, instead of failing ensure-printers.service and with it
        the switch. The other printers are set up either way.
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

    (lib.mkIf (printers.ensurePrinters != [ ] && printing.enable) {
      systemd.services.ensure-printers = {
        script = lib.mkForce script;
        path = [ config.systemd.package ];
        # A printer is reachable at the earliest when the network is: asking it
        # before then fails (and, for a new queue, only the retry sets it up).
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        serviceConfig.StateDirectory = "kvmfleet-printing";
      };
    })
  ];
}
