# A host of a VM test's inventory as a test node's module: the whole
# checks/<test>/hosts/<host>/generated.nix, less what a test node must not set.
#
#   hostModule = import ./_host.nix { inherit (pkgs.stdenv.hostPlatform) system; };
#   nodes.lacp1.imports = [ self.nixosModules.default (hostModule ./network/hosts/lacp1) ];
#
# The test framework evaluates every node with the test's read-only pkgs
# (nixos/modules/misc/nixpkgs/read-only.nix): nixpkgs.hostPlatform is read-only
# there, so the generated `nixpkgs` set is dropped, after checking that the host
# is of the test's platform. So is its `disko` layout: it describes the real
# machine's disk (checks/install.nix installs one), and the nodes, which run on
# the driver's disks, do not import disko's module. Everything else stays:
# qemu-vm.nix replaces the file systems (mkVMOverride) and adds its own GRUB
# device, and a boot loader is only installed with virtualisation.useBootLoader.
# Only builtins, so that the generator's tests evaluate it without nixpkgs.
{ system }:
dir:
let
  file = dir + "/generated.nix";
  generated = import file;
  platform = generated.nixpkgs.hostPlatform or system;
in
if platform != system then
  throw "${toString file}: a ${platform} host cannot be a node of a ${system} VM test"
else
  builtins.removeAttrs generated [
    "nixpkgs"
    "disko"
  ]
  // {
    _file = toString file;
  }
