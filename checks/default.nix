# The flake's checks.x86_64-linux:
#
#   toplevel-<host>        every nixosConfigurations.<host>, evaluated and built
#   pytest                 the generator's tests (tests/), with nix on PATH
#   generated-up-to-date   `kvmfleet --root SRC generate --check`: no generated.nix is stale
#   secrets                `kvmfleet --root SRC secrets check`: every host's sops file holds its
#                          secrets, encrypted for exactly its host key and the admins
#   formatting             nixfmt --check over every .nix file outside tests/
#   vm-<cap>               the NixOS VM test checks/<cap>.nix
#
# VM tests: a capability adds checks/<cap>.nix and touches nothing else. Every
# checks/*.nix except this file and helpers named with a leading "_"
# (checks/_common.nix, ...) is a VM test, a function returning the argument of
# pkgs.testers.runNixOSTest:
#
#   { self, pkgs, lib, ... }:
#   {
#     name = "<cap>";
#     nodes.kvm01 = {
#       imports = [ self.nixosModules.default ];
#       kvmfleet.roles = [ "hypervisor" ];
#     };
#     testScript = ''
#       kvm01.wait_for_unit("multi-user.target")
#     '';
#   }
#
# Nodes get this flake's modules only by importing self.nixosModules.default.
# They use the test's read-only pkgs, so they must not set nixpkgs.* (as a whole
# hosts/<name>/generated.nix does): checks/_host.nix gives a node a test host's
# whole generated module without it.
{
  self,
  pkgs,
  lib,
  src,
  # the generator's dependencies and test tools (the dev shell's Python)
  python,
}:
let
  kvmfleet = self.packages.${pkgs.stdenv.hostPlatform.system}.kvmfleet;

  # Each host's toplevel, under the checks of its own platform only (an aarch64 host cannot be
  # built by an x86_64 `nix flake check`).
  system = pkgs.stdenv.hostPlatform.system;
  hosts =
    lib.mapAttrs' (name: host: lib.nameValuePair "toplevel-${name}" host.config.system.build.toplevel)
      (
        lib.filterAttrs (_: host: host.pkgs.stdenv.hostPlatform.system == system) self.nixosConfigurations
      );

  isVMTest =
    name: type:
    type == "regular" && lib.hasSuffix ".nix" name && name != "default.nix" && !lib.hasPrefix "_" name;
  vmTest =
    file:
    pkgs.testers.runNixOSTest {
      imports = [ (lib.setDefaultModuleLocation file (import file { inherit self pkgs lib; })) ];
    };
  vmTests = lib.mapAttrs' (
    name: _: lib.nameValuePair "vm-${lib.removeSuffix ".nix" name}" (vmTest (./. + "/${name}"))
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
          # tests/test_cli.py runs git init/add in a scratch fleet
          pkgs.git
          # tests/test_secrets.py: real sops, age and throwaway SSH keys
          pkgs.sops
          pkgs.age
          pkgs.openssh
        ];
      }
      ''
        cp -r ${src} source
        chmod -R u+w source
        cd source
        # nix-instantiate --store dummy:// needs only a writable home and state dir.
        export HOME=$TMPDIR/home NIX_STATE_DIR=$TMPDIR/nix-state
        mkdir -p "$HOME" "$NIX_STATE_DIR"
        # CI=1: tests that need nix fail instead of skipping. The real-CUPS tests
        # (tests/test_printing_cups.py) need root and Debian's cups: they run in
        # the project's CI (.ci/run), not in this sandbox.
        export CI=1 KVMFLEET_SKIP_CUPS=1 PYTHONPATH=$PWD/generators
        python -m pytest -q -p no:cacheprovider tests
        touch $out
      '';

  generated-up-to-date = pkgs.runCommand "kvmfleet-generated-up-to-date" { } ''
    ${lib.getExe kvmfleet} --root ${src} generate --check
    touch $out
  '';

  secrets = pkgs.runCommand "kvmfleet-secrets" { } ''
    ${lib.getExe kvmfleet} --root ${src} secrets check
    touch $out
  '';

  formatting = pkgs.runCommand "kvmfleet-formatting" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
    cd ${src}
    # hand-written and generated files alike; tests/ holds fixtures
    find . -name '*.nix' -not -path './tests/*' -print0 | sort -z | xargs -0 -r nixfmt --check
    touch $out
  '';
}
