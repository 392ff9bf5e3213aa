# The hand-written modules in a directory: every regular *.nix file except
# default.nix, as an attribute set from name (without .nix) to path. Used by
# modules/default.nix (imports) and the flake (nixosModules.<name>). Pure
# builtins: `imports` cannot use module arguments such as lib.
dir:
let
  entries = builtins.readDir dir;
  isModule =
    name:
    entries.${name} == "regular" && builtins.match ".*\\.nix" name != null && name != "default.nix";
in
builtins.listToAttrs (
  map (name: {
    name = builtins.substring 0 (builtins.stringLength name - 4) name;
    value = dir + "/${name}";
  }) (builtins.filter isModule (builtins.attrNames entries))
)
