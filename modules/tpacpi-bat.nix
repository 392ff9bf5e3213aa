# services.tpacpi-bat: ThinkPad battery charge thresholds, set at boot and again
# after every resume from suspend or hibernation (some firmware forgets them).
# Two drivers: "tpacpi-bat" (the tpacpi-bat tool over the acpi_call module, for
# older ThinkPads) and "natacpi" (the kernel's charge_control_*_threshold files,
# ThinkPads from about 2011 on with Linux >= 5.17). A normal NixOS module, usable
# without kvmfleet. The writing is done by pkgs/battery-thresholds, which logs
# what it set and exits non-zero when a battery refuses a value.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.services.tpacpi-bat;
  tpacpi = cfg.driver == "tpacpi-bat";
  writer = pkgs.callPackage ../pkgs/battery-thresholds/package.nix { };

  limit = types.submodule {
    options = {
      battery = mkOption {
        type = types.either types.ints.unsigned (types.strMatching "[A-Za-z0-9_]+");
        example = 1;
        description = ''
          tpacpi-bat: 1 (main), 2 (secondary) or 0 (every battery).
          natacpi: a power supply name ("BAT0") or its index (0 for BAT0).
        '';
      };
      start = mkOption {
        type = types.ints.between 0 99;
        example = 40;
        description = "Start charging below this percentage (0: the firmware's default).";
      };
      stop = mkOption {
        type = types.ints.between 0 100;
        example = 90;
        description = ''
          Stop charging at this percentage. tpacpi-bat: 1-99, 0 for the
          firmware's default; natacpi: 1-100, 100 being the default.
        '';
      };
    };
  };

  batteryName =
    l: if tpacpi || lib.isString l.battery then toString l.battery else "BAT${toString l.battery}";
  limitArg = l: "${batteryName l}:${toString l.start}:${toString l.stop}";
  command = lib.escapeShellArgs (
    [
      (lib.getExe writer)
      "--driver"
      cfg.driver
    ]
    ++ (
      if tpacpi then
        [
          "--tpacpi-bat"
          (lib.getExe cfg.package)
        ]
      else
        [
          "--sysfs-root"
          cfg.sysfsRoot
        ]
    )
    ++ map limitArg cfg.limits
  );

  badLimit =
    l:
    if tpacpi then
      !(lib.elem l.battery [
        0
        1
        2
      ])
      || l.stop > 99
      || (l.start != 0 && l.stop != 0 && l.start >= l.stop)
    else
      l.stop < 1 || l.start >= l.stop;
  names = map batteryName cfg.limits;

  sleepTargets = [
    "suspend.target"
    "hibernate.target"
    "hybrid-sleep.target"
    "suspend-then-hibernate.target"
  ];
  serviceConfig = {
    Type = "oneshot";
    ExecStart = command;
    # At boot the battery's sysfs files or acpi_call may not be there yet.
    Restart = "on-failure";
    RestartSec = "5s";
  };
  startLimit = {
    startLimitBurst = 5;
    startLimitIntervalSec = 120;
  };

  tlpThresholds = lib.filter (
    name: lib.hasPrefix "START_CHARGE_THRESH" name || lib.hasPrefix "STOP_CHARGE_THRESH" name
  ) (lib.attrNames config.services.tlp.settings);
in
{
  options.services.tpacpi-bat = {
    enable = lib.mkEnableOption "ThinkPad battery charge thresholds (tpacpi-bat or natacpi)";

    package = lib.mkPackageOption pkgs "tpacpi-bat" { };

    driver = mkOption {
      type = types.enum [
        "tpacpi-bat"
        "natacpi"
      ];
      default = "tpacpi-bat";
      description = ''
        "tpacpi-bat": ACPI calls through the acpi_call module (older ThinkPads);
        "natacpi": the kernel's charge_control_{start,end}_threshold files in
        /sys/class/power_supply/BAT* (ThinkPads from about 2011 on, Linux >= 5.17).
      '';
    };

    limits = mkOption {
      type = types.listOf limit;
      default = [ ];
      example = [
        {
          battery = 0;
          start = 40;
          stop = 90;
        }
      ];
      description = "Charge thresholds, one entry per battery.";
    };

    sysfsRoot = mkOption {
      type = types.str;
      default = "/sys";
      description = ''
        Where natacpi looks for class/power_supply/; tests point it at a
        directory of their own.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !lib.any badLimit cfg.limits;
        message =
          if tpacpi then
            "services.tpacpi-bat.limits: tpacpi-bat takes battery 0, 1 or 2 and percentages 1-99 (0 = default) with start below stop"
          else
            "services.tpacpi-bat.limits: natacpi takes start 0-99 and stop 1-100 with start below stop";
      }
      {
        assertion = lib.length (lib.unique names) == lib.length names;
        message = "services.tpacpi-bat.limits: a battery is listed twice";
      }
      {
        assertion = cfg.limits != [ ];
        message = "services.tpacpi-bat.limits is empty";
      }
    ];

    warnings = lib.optional (config.services.tlp.enable && tlpThresholds != [ ]) (
      "services.tpacpi-bat and TLP (${lib.concatStringsSep ", " tlpThresholds}) both set battery "
      + "charge thresholds and will overwrite each other; keep one of them"
    );

    boot.extraModulePackages = lib.mkIf tpacpi [ config.boot.kernelPackages.acpi_call ];
    boot.kernelModules = lib.mkIf tpacpi [ "acpi_call" ];
    # to read the thresholds by hand: tpacpi-bat -g ST 1
    environment.systemPackages = lib.mkIf tpacpi [ cfg.package ];

    systemd.services.tpacpi-bat = startLimit // {
      description = "Set battery charge thresholds";
      wantedBy = [ "multi-user.target" ];
      after = [ "systemd-modules-load.service" ];
      # Re-run (with the new limits) when a switch changes them.
      serviceConfig = serviceConfig // {
        RemainAfterExit = true;
      };
    };

    # Ordered after the sleep targets, which are reached once the machine is back.
    systemd.services.tpacpi-bat-resume = startLimit // {
      description = "Set battery charge thresholds after resume";
      wantedBy = sleepTargets;
      after = sleepTargets;
      inherit serviceConfig;
    };
  };
}
