# Two gaps of nixpkgs' services.multipath, filled wherever it is enabled:
# - multipathd runs from boot: NixOS takes the unit from multipath-tools
#   (systemd.packages) but ignores its [Install] WantedBy=sysinit.target, and
#   the module adds none, so without this multipathd only starts when
#   something asks for it;
# - a changed /etc/multipath.conf reaches the running daemon: `switch` reloads
#   multipathd (ExecReload = `multipathd reconfigure`) when the file changes.
# (extraConfig is declared by that module but not written into the file:
# kvmfleet uses devices, defaults and blacklist only.)
{ config, lib, ... }:
lib.mkIf config.services.multipath.enable {
  systemd.services.multipathd = {
    wantedBy = [ "sysinit.target" ];
    reloadTriggers = [ config.environment.etc."multipath.conf".text ];
  };
}
