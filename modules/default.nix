# Every hand-written kvmfleet module: all other *.nix files in this directory.
# Files are found by reading the directory, so adding a capability's module
# (modules/<cap>.nix) needs no registry line here. Only builtins are used, so
# the list does not depend on module arguments.
let
  isModule =
    name: type: type == "regular" && builtins.match ".*\\.nix" name != null && name != "default.nix";
  entries = builtins.readDir ./.;
in
{
  imports = map (name: ./. + "/${name}") (
    builtins.filter (name: isModule name entries.${name}) (builtins.attrNames entries)
  );
}
