# bond-macs: keeps each bond's configured MAC through any slave loss (a stdlib-only Python daemon
# on rtnetlink; its tests are tests/test_bond_macs.py).
{
  lib,
  stdenvNoCC,
  python3,
}:
import ../host-program.nix { inherit lib stdenvNoCC python3; } {
  name = "bond-macs";
  script = ./bond_macs.py;
  description = "Keep each Linux bond's configured MAC address when its slaves leave and return";
}
