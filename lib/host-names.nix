# The host directories under hosts/, by the rule the generator applies too
# (kvmfleet.inventory.scan_hosts): a real directory (not a link) whose name is
# a valid host name (RFC 1123 label, lower case) holding a regular host.toml.
# The flake builds only those that also hold a generated.nix. Pure builtins:
# the project's CI evaluates this file with Nix alone.
hostsDir:
let
  entries = builtins.readDir hostsDir;
  validName = name: builtins.match "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" name != null;
  fileType = name: file: (builtins.readDir (hostsDir + "/${name}")).${file} or null;
  isHost =
    name:
    entries.${name} == "directory"
    && validName name
    && fileType name "host.toml" == "regular"
    && fileType name "generated.nix" == "regular";
in
builtins.filter isHost (builtins.attrNames entries)
