# Gaps of nixpkgs' services.multipath (multipath-tools 0.14.1 in the pin),
# filled wherever it is enabled:
# - multipathd runs from boot: NixOS takes the unit from multipath-tools
#   (systemd.packages) but ignores its [Install] WantedBy=sysinit.target, and
#   the module adds none, so without this multipathd only starts when
#   something asks for it;
# - a changed /etc/multipath.conf reaches the running daemon: `switch` reloads
#   multipathd (ExecReload = `multipathd reconfigure`) when the file changes;
# - multipathd.service wants multipathd-queueing.service, whose ExecStart is
#   /bin/true (multipathd/multipathd-queueing.service.in), absent on NixOS:
#   the unit failed at every boot (203/EXEC) and every switch reported it. Its
#   job is its ExecStop, `multipathd disablequeueing maps`, which keeps
#   shutdown from hanging on maps that queue with no path left: the unit stays,
#   with coreutils' true. It is never restarted by a switch: that would run its
#   ExecStop and leave live maps without queueing (multipathd keeps a map's
#   disable_queueing until the map is set up again with a path);
# - multipath-tools' udev rules, which the module does not install: a path
#   device of a map is claimed (56-multipath.rules, `multipath -u`: marked
#   mpath_member and SYSTEMD_READY=0, so LVM, a mount by UUID or blkid users
#   leave it alone), partitions on a map get their own maps (66-kpartx.rules
#   runs kpartx; 11-dm-parts.rules names them), a map's readiness is tracked
#   (11-dm-mpath.rules, 99-z-dm-mpath-late.rules) and stale partition nodes of
#   path devices are removed (68-del-part-nodes.rules). multipath-tools writes
#   /usr/bin, /usr/sbin and /usr/lib/udev paths into them, which NixOS's udev
#   rules check rejects or which do not exist: they are replaced with store
#   paths (--replace-fail: a new multipath-tools that changes them fails the
#   build instead of shipping a rule that silently does nothing);
# - /run/multipath, its runtime directory (the package's tmpfiles.d file).
# (extraConfig is declared by that module but not written into the file:
# kvmfleet uses devices, defaults and blacklist only. path_checker is an enum
# with a default, so every device stanza gets `path_checker tur`.)
{
  config,
  lib,
  pkgs,
  ...
}:
let
  mp = config.services.multipath.package;
  bin = pkg: name: "${lib.getBin pkg}/bin/${name}";
  systemd = config.systemd.package;
  kpartxId = "${mp}/lib/udev/kpartx_id";

  udevRules = pkgs.runCommand "${mp.name}-udev-rules" { } ''
    mkdir -p $out/lib/udev/rules.d
    cp ${mp}/lib/udev/rules.d/*.rules $out/lib/udev/rules.d/
    cd $out/lib/udev/rules.d
    substituteInPlace 11-dm-mpath.rules \
      --replace-fail /usr/bin/logger ${bin pkgs.util-linux "logger"} \
      --replace-fail /usr/lib/udev/kpartx_id ${kpartxId} \
      --replace-fail '"kpartx_id ' '"${kpartxId} '
    substituteInPlace 11-dm-parts.rules \
      --replace-fail '"kpartx_id ' '"${kpartxId} '
    substituteInPlace 56-multipath.rules \
      --replace-fail /usr/bin/rm ${bin pkgs.coreutils "rm"} \
      --replace-fail /usr/bin/systemd-run ${bin systemd "systemd-run"} \
      --replace-fail /usr/bin/systemctl ${bin systemd "systemctl"} \
      --replace-fail /usr/bin/udevadm ${bin systemd "udevadm"}
    substituteInPlace 68-del-part-nodes.rules \
      --replace-fail /usr/sbin/partx ${bin pkgs.util-linux "partx"}
    if grep -n /usr/ *.rules; then
      echo "multipath-tools' udev rules still name /usr paths" >&2
      exit 1
    fi
  '';
in
lib.mkIf config.services.multipath.enable {
  systemd.services.multipathd = {
    wantedBy = [ "sysinit.target" ];
    reloadTriggers = [ config.environment.etc."multipath.conf".text ];
  };

  systemd.services.multipathd-queueing = {
    serviceConfig.ExecStart = [
      ""
      (bin pkgs.coreutils "true")
    ];
    restartIfChanged = false;
  };

  services.udev.packages = [ udevRules ];
  systemd.tmpfiles.packages = [ mp ];
}
