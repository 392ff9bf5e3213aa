# Every hand-written kvmfleet module: all other *.nix files in this directory.
# They are found by reading the directory, so a capability's modules/<cap>.nix
# needs no registry line here. Only builtins: imports cannot use module arguments.
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
