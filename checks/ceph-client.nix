# VM test of the ceph capability, over IPv6 only: a one-node Ceph cluster
# ("cluster": mon, mgr, two BlueStore OSDs, MDS; bootstrapped by hand as in
# nixpkgs' ceph-single-node-bluestore and ceph-multi-node-bluestore-cephfs
# tests) and the hypervisor kvm1, configured with the ceph part of the module
# kvmfleet generated from the test inventory in checks/ceph-client/hosts/
# (kept fresh by tests/test_ceph.py).
#
# Asserts that, on kvm1:
# - without its keyring file, ceph-keyring-<id>.service fails naming the file,
#   no keyring lands in /etc/ceph and the CephFS mount fails (no key);
# - once the file is provisioned, the next access to the mountpoint mounts
#   CephFS (the automount retries) through the kernel client with msgr2
#   (ms_mode from the inventory), and the keyring is in /etc/ceph, root, 0600;
# - after a reboot the keyring unit succeeds and CephFS mounts again;
# - cephfs-du reports the recursive sizes of a tree written there, and a clear
#   error for a directory that is not on CephFS;
# - RBD with the client's key: an image made by `rbd` is read by qemu-img and
#   one made by qemu-img by `rbd` (QEMU built with RBD), and libvirt supports
#   rbd storage pools.
{
  self,
  pkgs,
  lib,
  ...
}:
let
  hostDir = ./ceph-client/hosts/kvm1;
  generated = import (hostDir + "/generated.nix");

  # The ceph capability's part of the generated host module; the rest
  # (boot loader, disks, network) describes a real machine.
  cephOf = {
    services.ceph = generated.services.ceph;
    services.ceph-client = generated.services.ceph-client;
    fileSystems = lib.filterAttrs (_: fs: fs.fsType == "ceph") generated.fileSystems;
  };

  ceph = generated.services.ceph;
  client = lib.head (lib.attrNames generated.services.ceph-client.keyrings);
  mountpoint = lib.head (lib.attrNames cephOf.fileSystems);
  mount = cephOf.fileSystems.${mountpoint};
  # "<client>@<fsid>.<fs name>=<path>"
  fsName = lib.head (builtins.match "[^@]*@[^.]*\\.([^=]*)=.*" mount.device);

  clusterAddress = "fd00:ce::1";
  clientAddress = "fd00:ce::2";

  ipv6Only = address: {
    dhcpcd.enable = false;
    interfaces.eth1 = {
      ipv4.addresses = lib.mkForce [ ];
      ipv6.addresses = lib.mkForce [
        {
          inherit address;
          prefixLength = 64;
        }
      ];
    };
  };

  expected = {
    inherit client mountpoint fsName;
    inherit (ceph.global) fsid;
    keyring = generated.services.ceph-client.keyrings.${client}.file;
    msMode = lib.findFirst (lib.hasPrefix "ms_mode=") null mount.options;
    monAddrv = "[v2:[${clusterAddress}]:3300,v1:[${clusterAddress}]:6789]";
  };
in
{
  name = "ceph-client";

  nodes.cluster = {
    virtualisation = {
      vlans = [ 1 ];
      memorySize = 2048;
      emptyDiskImages = [
        8192
        8192
      ];
    };
    networking = ipv6Only clusterAddress // {
      firewall = {
        allowedTCPPorts = [
          3300
          6789
        ];
        allowedTCPPortRanges = [
          {
            from = 6800;
            to = 7300;
          }
        ];
      };
    };
    environment.systemPackages = [
      pkgs.ceph
      pkgs.sudo
    ];
    services.ceph = {
      enable = true;
      global = {
        inherit (ceph.global) fsid;
        monInitialMembers = "a";
        monHost = expected.monAddrv;
        publicNetwork = "fd00:ce::/64";
      };
      extraConfig = {
        "ms bind ipv6" = "true";
        "ms bind ipv4" = "false";
        # one host: replicate across OSDs, not hosts
        "osd crush chooseleaf type" = "0";
        "osd pool default size" = "2";
        "osd pool default min size" = "1";
      };
      mon = {
        enable = true;
        daemons = [ "a" ];
      };
      mgr = {
        enable = true;
        daemons = [ "a" ];
      };
      osd = {
        enable = true;
        daemons = [
          "0"
          "1"
        ];
        extraConfig = { };
      };
      mds = {
        enable = true;
        daemons = [ "a" ];
      };
    };
  };

  nodes.kvm1 = {
    imports = [
      self.nixosModules.default
      cephOf
    ];
    virtualisation.vlans = [ 1 ];
    networking = ipv6Only clientAddress;
    # the hypervisor's libvirtd (the cloudstack capability's part); its QEMU
    # is the RBD-enabled one the ceph module chose, qemu-img included
    virtualisation.libvirtd.enable = true;
  };

  testScript = ''
    import json
    import uuid

    E = json.loads(${builtins.toJSON (builtins.toJSON expected)})
    CLIENT = E["client"]
    MP = E["mountpoint"]
    FS = E["fsName"]
    UNIT = f"ceph-keyring-{CLIENT}.service"
    INSTALLED = f"/etc/ceph/ceph.client.{CLIENT}.keyring"


    def cephfs_mounted():
        """Touch the mountpoint (which triggers the automount), then ask
        the kernel whether CephFS is mounted there."""
        kvm1.execute(f"timeout 60 ls {MP}")
        status, _ = kvm1.execute(f"findmnt -n -t ceph --mountpoint {MP}")
        return status == 0


    start_all()

    with subtest("without its keyring file, the keyring unit fails naming the file"):
        kvm1.wait_for_unit("multi-user.target")
        kvm1.wait_until_succeeds(f"systemctl is-failed {UNIT}")
        kvm1.succeed(f"journalctl -b -u {UNIT} --no-pager | grep -F 'is missing: {E['keyring']} does not exist'")
        kvm1.fail(f"test -e {INSTALLED}")

    with subtest("ceph.conf: the cluster's fsid, IPv6 monitors, IPv6 messenger"):
        conf = kvm1.succeed("cat /etc/ceph/ceph.conf")
        assert E["fsid"] in conf, conf
        kvm1.succeed("grep -Eq '^ms_bind_ipv6 *= *true' /etc/ceph/ceph.conf")
        kvm1.succeed("grep -Eq '^ms_bind_ipv4 *= *false' /etc/ceph/ceph.conf")

    with subtest("bootstrap the cluster over IPv6"):
        cluster.wait_for_unit("network.target")
        # both addresses past duplicate address detection, so daemons can bind
        cluster.wait_until_succeeds("ping -c 1 -W 1 ${clientAddress}")
        kvm1.wait_until_succeeds("ping -c 1 -W 1 ${clusterAddress}")
        cluster.succeed(
            "sudo -u ceph ceph-authtool --create-keyring /tmp/ceph.mon.keyring --gen-key -n mon. --cap mon 'allow *'",
            "sudo -u ceph ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'",
            "sudo -u ceph ceph-authtool /tmp/ceph.mon.keyring --import-keyring /etc/ceph/ceph.client.admin.keyring",
            f"monmaptool --create --addv a '{E['monAddrv']}' --fsid {E['fsid']} /tmp/monmap",
            "sudo -u ceph ceph-mon --mkfs -i a --monmap /tmp/monmap --keyring /tmp/ceph.mon.keyring",
            "sudo -u ceph touch /var/lib/ceph/mon/ceph-a/done",
            "systemctl start ceph-mon-a",
        )
        cluster.wait_for_unit("ceph-mon-a")
        cluster.wait_until_succeeds("ceph -s | grep 'mon: 1 daemons'")
        cluster.succeed(
            "sudo -u ceph mkdir -p /var/lib/ceph/mgr/ceph-a",
            "ceph auth get-or-create mgr.a mon 'allow profile mgr' osd 'allow *' mds 'allow *' > /var/lib/ceph/mgr/ceph-a/keyring",
            "systemctl start ceph-mgr-a",
        )
        cluster.wait_until_succeeds("ceph -s | grep 'mgr: a(active'")
        for osd, disk in (("0", "/dev/vdb"), ("1", "/dev/vdc")):
            osd_uuid = str(uuid.uuid4())
            # generated here: no Ceph key is written down in the repository
            key = cluster.succeed("ceph-authtool --gen-print-key").strip()
            cluster.succeed(
                f"mkdir -p /var/lib/ceph/osd/ceph-{osd}",
                f"echo bluestore > /var/lib/ceph/osd/ceph-{osd}/type",
                f"ln -sf {disk} /var/lib/ceph/osd/ceph-{osd}/block",
                f"ceph-authtool --create-keyring /var/lib/ceph/osd/ceph-{osd}/keyring --name osd.{osd} --add-key {key}",
                f"""echo '{{"cephx_secret": "{key}"}}' | ceph osd new {osd_uuid} -i -""",
                f"ceph-osd -i {osd} --mkfs --osd-uuid {osd_uuid}",
            )
        cluster.succeed(
            "chown -R ceph:ceph /var/lib/ceph/osd",
            "systemctl start ceph-osd-0 ceph-osd-1",
        )
        cluster.wait_until_succeeds("ceph osd stat | grep -e '2 osds: 2 up[^,]*, 2 in'")
        cluster.succeed(
            "sudo -u ceph mkdir -p /var/lib/ceph/mds/ceph-a",
            "ceph auth get-or-create mds.a mon 'allow profile mds' mgr 'allow profile mds' osd 'allow rwx' mds 'allow' > /var/lib/ceph/mds/ceph-a/keyring",
            "chown ceph:ceph /var/lib/ceph/mds/ceph-a/keyring",
            "systemctl start ceph-mds-a",
            "ceph osd pool create cephfs-data 16 16",
            "ceph osd pool create cephfs-metadata 16 16",
            f"ceph fs new {FS} cephfs-metadata cephfs-data",
            "ceph osd pool create rbd 16 16",
            "rbd pool init rbd",
        )
        cluster.wait_until_succeeds(f"ceph fs status {FS} | grep -q active")
        # the hypervisor's key: CephFS and the rbd pool
        cluster.succeed(
            f"ceph auth get-or-create client.{CLIENT} mon 'allow r' mds 'allow rw'"
            f" osd 'allow rw tag cephfs data={FS}, allow rwx pool=rbd' -o /tmp/shared/client.keyring"
        )

    with subtest("a failed mount is retried: the first access after the keyring arrives mounts CephFS"):
        # no keyring yet: the access fails and nothing is mounted
        assert not cephfs_mounted()
        kvm1.succeed(f"systemctl is-failed {UNIT}")
        kvm1.succeed(f"install -D -m 0600 /tmp/shared/client.keyring {E['keyring']}")
        retry(lambda _: cephfs_mounted(), timeout_seconds=120)
        assert kvm1.succeed(f"stat -c '%a %U %G' {INSTALLED}").strip() == "600 root root"
        kvm1.succeed(f"systemctl is-active {UNIT}")
        options = kvm1.succeed(f"findmnt -n -t ceph -o OPTIONS --mountpoint {MP}")
        assert f"name={CLIENT}" in options, options
        if E["msMode"]:
            assert E["msMode"] in options, options

    with subtest("after a reboot the keyring is installed and CephFS mounts"):
        kvm1.shutdown()
        kvm1.start()
        kvm1.wait_for_unit("multi-user.target")
        kvm1.wait_for_unit(UNIT)
        mount_unit = kvm1.succeed(f"systemd-escape --path --suffix=mount {MP}").strip()
        assert UNIT in kvm1.succeed(f"systemctl show -p Wants --value {mount_unit}")
        assert UNIT in kvm1.succeed(f"systemctl show -p After --value {mount_unit}")
        retry(lambda _: cephfs_mounted(), timeout_seconds=120)

    with subtest("cephfs-du: recursive sizes from CephFS, without walking the tree"):
        kvm1.succeed(
            f"mkdir -p {MP}/du/a/sub {MP}/du/b",
            f"head -c 1000 /dev/urandom > {MP}/du/a/one",
            f"head -c 2000 /dev/urandom > {MP}/du/a/two",
            f"head -c 500 /dev/urandom > {MP}/du/a/sub/three",
            f"head -c 10 /dev/urandom > {MP}/du/b/four",
            "sync",
        )
        # Ceph's rsubdirs counts the directory itself, like `find -type d`
        want = {"a": [3500, 3, 2], "b": [10, 1, 1]}
        want_total = [3510, 4, 4]

        def du_as_expected(_):
            report = json.loads(kvm1.succeed(f"cephfs-du --json {MP}/du"))
            got = {e["name"]: [e["bytes"], e["files"], e["subdirs"]] for e in report["entries"]}
            total = [report["total"][k] for k in ("bytes", "files", "subdirs")]
            if got != want or total != want_total:
                # the MDS propagates recursive statistics lazily
                kvm1.log(f"cephfs-du not (yet) as expected: {report}")
                return False
            return True

        retry(du_as_expected, timeout_seconds=120)
        text = kvm1.succeed(f"cephfs-du --bytes {MP}/du")
        assert text.splitlines()[1].split()[0] == "3500" and text.splitlines()[1].endswith(" a/"), text
        assert text.splitlines()[-1].split()[:3] == ["3510", "4", "4"], text
        kvm1.succeed("cephfs-du /etc 2>&1 | grep -q '/etc: not on CephFS'")
        kvm1.fail("cephfs-du /etc")

    with subtest("RBD with the client's key: rbd and QEMU, libvirt rbd pools"):
        kvm1.succeed(f"rbd --id {CLIENT} create --size 64 rbd/made-by-rbd")
        info = kvm1.succeed(f"qemu-img info rbd:rbd/made-by-rbd:id={CLIENT}")
        assert "virtual size: 64 MiB" in info, info
        kvm1.succeed(f"qemu-img create -f raw rbd:rbd/made-by-qemu:id={CLIENT} 32M")
        info = kvm1.succeed(f"rbd --id {CLIENT} info rbd/made-by-qemu")
        assert "size 32 MiB" in info, info
        kvm1.wait_for_unit("libvirtd.socket")
        kvm1.succeed("virsh pool-capabilities | grep -Eq \"pool type=.rbd. supported=.yes.\"")
  '';
}
