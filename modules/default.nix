# Every hand-written kvmfleet module: all other *.nix files in this directory.
# They are found by reading the directory, so a capability's modules/<cap>.nix
# needs no registry line here.
{
  imports = builtins.attrValues (import ../lib/module-files.nix ./.);
}
