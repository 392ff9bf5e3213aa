# The flake's checks.x86_64-linux.
#
#   toplevel-<host>        every nixosConfigurations.<host>, fully evaluated and built
#   pytest                 the generator's test suite (tests/), with nix on PATH
#   generated-up-to-date   `kvmfleet generate --check`: no hosts/*/generated.nix is stale
#   formatting             nixfmt --check over every .nix file outside tests/
#   vm-<cap>               the NixOS VM test in checks/<cap>.nix
#
# VM tests: a capability adds checks/<cap>.nix and nothing else. Every checks/*.nix
# except this file and helpers whose name starts with "_" (checks/_lib.nix, ...)
# is a VM test: a function
#
#   { self, pkgs, lib, ... }:
#   {
#     name = "<cap>";
#     nodes.kvm = { imports = [ self.nixosModules.default ]; ... };
#     testScript = ''...'';
#   }
#
# returning the argument of pkgs.testers.runNixOSTest. Nodes get this flake's
# modules only by importing self.nixosModules.default; they use the test's
# (read-only) pkgs, so they must not set nixpkgs.* (e.g. by importing a whole
# hosts/<name>/generated.nix).
{
  self,
  pkgs,
  lib,
  src,
}:
let
  system = pkgs.stdenv.hostPlatform.system;
  kvmfleet = self.packages.${system}.kvmfleet;

  python = pkgs.python3.withPackages (ps: [
    ps.pydantic
    ps.tomlkit
    ps.pytest
    ps.hypothesis
  ]);

  hosts = lib.mapAttrs' (
    name: host: lib.nameValuePair "toplevel-${name}" host.config.system.build.toplevel
  ) self.nixosConfigurations;

  isVMTest =
    name: type:
    type == "regular" && lib.hasSuffix ".nix" name && name != "default.nix" && !lib.hasPrefix "_" name;
  vmTests = lib.mapAttrs' (
    name: _:
    let
      file = ./. + "/${name}";
    in
    lib.nameValuePair "vm-${lib.removeSuffix ".nix" name}" (
      pkgs.testers.runNixOSTest {
        imports = [ (lib.setDefaultModuleLocation file (import file { inherit self pkgs lib; })) ];
      }
    )
  ) (lib.filterAttrs isVMTest (builtins.readDir ./.));
in
hosts
// vmTests
// {
  pytest =
    pkgs.runCommand "kvmfleet-pytest"
      {
        nativeBuildInputs = [
          python
          pkgs.nix
        ];
      }
      ''
        cp -r ${src} source
        chmod -R u+w source
        cd source
        # nix-instantiate --store dummy:// needs only a writable home and state dir.
        export HOME=$TMPDIR/home NIX_STATE_DIR=$TMPDIR/nix-state
        mkdir -p "$HOME" "$NIX_STATE_DIR"
        # CI=1: tests that need nix fail instead of skipping.
        export CI=1 PYTHONPATH=$PWD/generators
        python -m pytest -q -p no:cacheprovider tests
        touch $out
      '';

  generated-up-to-date = pkgs.runCommand "kvmfleet-generated-up-to-date" { } ''
    ${lib.getExe kvmfleet} generate --check --root ${src}
    touch $out
  '';

  formatting = pkgs.runCommand "kvmfleet-formatting" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
    cd ${src}
    # Hand-written modules and generated host files alike; tests/ holds fixtures.
    find . -name '*.nix' -not -path './tests/*' -print0 | sort -z | xargs -0 -r nixfmt --check
    touch $out
  '';
}
