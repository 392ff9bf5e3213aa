# ensure-printers: sets up the declared CUPS printers without re-querying a driverless queue
# cupsd already keeps (a stdlib-only Python script; its tests are tests/test_ensure_printers.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
import ../host-program.nix { inherit lib stdenvNoCC python3; } {
  name = "ensure-printers";
  script = ./ensure_printers.py;
  description = "Set up declared CUPS printers without losing a driverless queue that is away";
}
