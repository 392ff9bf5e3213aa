# battery-thresholds: sets ThinkPad charge thresholds through tpacpi-bat or the kernel's
# natacpi sysfs files (a stdlib-only Python script; its tests are tests/test_battery_thresholds.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
import ../host-program.nix { inherit lib stdenvNoCC python3; } {
  name = "battery-thresholds";
  script = ./battery_thresholds.py;
  description = "Set ThinkPad battery charge thresholds through tpacpi-bat or natacpi sysfs";
}
