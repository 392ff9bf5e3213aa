# The installer ISO (packages.x86_64-linux.installer-iso): NixOS's minimal
# installation CD plus this flake, kvmfleet and disko. At boot the flake is
# copied to /root/kvmfleet as a git work tree (install plans `git add` the
# captured hardware.nix there); every interactive shell prints the fleet's
# install overview (`kvmfleet install-plan`: every host and the disk its
# install wipes). The flake's inputs are in the ISO's store, so evaluating a
# host needs no network (building it still fetches from the binary caches).
{
  config,
  lib,
  pkgs,
  fleet,
  ...
}:
let
  system = pkgs.stdenv.hostPlatform.system;
  kvmfleet = fleet.packages.${system}.kvmfleet;
  checkout = "/root/kvmfleet";
  git = lib.getExe config.programs.git.package;
in
{
  isoImage.appendToMenuLabel = " kvmfleet installer";

  environment.systemPackages = [
    kvmfleet
    fleet.inputs.disko.packages.${system}.disko
  ];

  # Locked flake inputs already in the store are not fetched again.
  system.extraDependencies = map (input: input.outPath) (
    lib.attrValues (removeAttrs fleet.inputs [ "self" ])
  );

  systemd.services.kvmfleet-checkout = {
    description = "Copy the kvmfleet flake to ${checkout}";
    wantedBy = [ "multi-user.target" ];
    unitConfig.ConditionPathExists = "!${checkout}";
    serviceConfig.Type = "oneshot";
    script = ''
      cp -rT ${fleet} ${checkout}
      chmod -R u+w ${checkout}
      cd ${checkout}
      ${git} init -q
      ${git} add -A
    '';
  };

  # Printed by every interactive shell, from the read-only copy (the nixos user
  # cannot read /root); the plan itself runs as root in the writable checkout.
  programs.bash.interactiveShellInit = ''
    ${lib.getExe kvmfleet} --root ${fleet} install-plan 2>/dev/null || true
    echo "Run it as root in the flake's checkout: sudo -i; cd ${checkout}"
  '';
}
