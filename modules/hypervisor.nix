# The hypervisor role (kvmfleet.hypervisor): a minimal KVM host for CloudStack.
# libvirt's remote access for migrations, qemu.conf, nested virtualisation, the
# NFS client the agent mounts storage with, and the kernel and firewall
# settings bridged guest traffic and CloudStack's security groups need. The
# agent itself is services.cloudstack-agent.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.kvmfleet.hypervisor;
  tls = cfg.libvirt.transport == "tls";
  port = if tls then 16514 else 16509;
  socket = if tls then "libvirtd-tls" else "libvirtd-tcp";
  listen =
    address:
    if lib.hasInfix ":" address then "[${address}]:${toString port}" else "${address}:${toString port}";

  # Written by keystore-cert-import on "Add Host" (the CloudStack CA's).
  certificates = {
    ca = "/etc/cloudstack/agent/cloud.ca.crt";
    cert = "/etc/cloudstack/agent/cloud.crt";
    key = "/etc/cloudstack/agent/cloud.key";
  };

  nfsOptions = lib.filterAttrs (_: v: v != null) {
    timeo = cfg.nfs.timeo;
    retrans = cfg.nfs.retrans;
  };
in
{
  options.kvmfleet.hypervisor = {
    enable = mkOption {
      type = types.bool;
      default = lib.elem "hypervisor" config.kvmfleet.roles;
      defaultText = lib.literalExpression ''lib.elem "hypervisor" config.kvmfleet.roles'';
      description = "Configure this host as a CloudStack KVM hypervisor.";
    };

    libvirt = {
      transport = mkOption {
        type = types.enum [
          "tls"
          "tcp"
        ];
        default = "tls";
        description = ''
          libvirt's remote access for the management server and migrations:
          "tls" (16514, certificates from the CloudStack CA, listening once
          "Add Host" has installed them) or "tcp" (16509, unauthenticated:
          whoever reaches the port controls every VM).
        '';
      };
      listenAddresses = mkOption {
        type = types.nonEmptyListOf types.str;
        example = [
          "10.0.10.21"
          "2a00:f10:113:1::21"
        ];
        description = "The host's management addresses; libvirt listens on these only.";
      };
    };

    vncListen = mkOption {
      type = types.str;
      example = "10.0.10.21";
      description = "Address QEMU's VNC consoles listen on (qemu.conf vnc_listen).";
    };

    nestedVirtualisation = mkOption {
      type = types.bool;
      default = false;
      description = "Let guests run KVM themselves (kvm_intel/kvm_amd nested=1).";
    };

    nfs = {
      timeo = mkOption {
        type = types.nullOr (types.ints.between 1 6000);
        default = null;
        description = ''
          Default NFS `timeo` (tenths of a second) for every NFS mount that does
          not set it, via /etc/nfsmount.conf. With `retrans` it bounds how long a
          TCP connection to a failed server hangs: the kernel sets the socket's
          TCP_USER_TIMEOUT to timeo × (retrans + 1). null: the kernel's 600.
        '';
      };
      retrans = mkOption {
        type = types.nullOr (types.ints.between 0 10);
        default = null;
        description = "Default NFS `retrans` via /etc/nfsmount.conf. null: the kernel's 2.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    # RBD primary storage: the agent loads librados/librbd through JNA and calls rbd.
    services.cloudstack-agent = lib.mkIf config.services.ceph-client.enable {
      jnaLibraries = [
        config.virtualisation.libvirtd.package
        (lib.getLib pkgs.ceph)
      ];
      extraPath = [ config.services.ceph-client.package ];
    };

    virtualisation.libvirtd = {
      enable = true;
      # libvirtd runs with --config <store path>; CloudStack needs no local
      # authentication beyond root, remote access is checked by TLS or not at all.
      extraConfig = ''
        auth_tcp = "none"
        auth_tls = "none"
        ca_file = "${certificates.ca}"
        cert_file = "${certificates.cert}"
        key_file = "${certificates.key}"
      '';
      # Guests run as root, as on CloudStack's supported distributions (runAsRoot, NixOS's
      # default, writes no user/group of its own).
      qemu.verbatimConfig = ''
        namespaces = []
        vnc_listen = "${cfg.vncListen}"
        ${lib.optionalString config.virtualisation.libvirtd.qemu.runAsRoot ''
          user = "root"
          group = "root"
        ''}
      '';
    };

    # NixOS socket-activates libvirtd, which then refuses --listen and ignores
    # listen_tls/listen_tcp: remote access is the TLS or TCP socket unit. Its
    # drop-in adds to upstream's ListenStream=16514 (all addresses), hence the
    # reset (""); FreeBind because it starts before networkd sets the address.
    systemd.sockets.${socket} = {
      wantedBy = [ "sockets.target" ];
      listenStreams = [ "" ] ++ map listen cfg.libvirt.listenAddresses;
      socketConfig.FreeBind = true;
      # libvirtd fails to start while a TLS socket lacks its certificates:
      # listen from "Add Host" on (cloudstack-setup-agent -s starts it).
      unitConfig.ConditionPathExists = lib.mkIf tls (lib.attrValues certificates);
    };

    # kvm_intel/kvm_amd load by udev from the CPU's features (and nixos-generate-config lists
    # the right one in hardware.nix); br_netfilter has no such trigger.
    boot.kernelModules = [ "br_netfilter" ];
    boot.extraModprobeConfig = lib.mkIf cfg.nestedVirtualisation ''
      options kvm_intel nested=1
      options kvm_amd nested=1
    '';
    # Security groups filter bridged guest traffic with iptables/ebtables.
    boot.kernel.sysctl = {
      "net.bridge.bridge-nf-call-iptables" = 1;
      "net.bridge.bridge-nf-call-ip6tables" = 1;
      "net.bridge.bridge-nf-call-arptables" = 1;
    };

    # The agent mounts NFS primary and secondary storage itself.
    boot.supportedFilesystems = [ "nfs" ];
    environment.etc."nfsmount.conf" = lib.mkIf (nfsOptions != { }) {
      text = ''
        [ NFSMount_Global_Options ]
        ${lib.concatStrings (lib.mapAttrsToList (k: v: "${k}=${toString v}\n") nfsOptions)}
      '';
    };

    networking.firewall = {
      # Bridged guest packets pass the firewall's reverse-path check (with
      # br_netfilter); strict drops guest traffic the host has no route back for.
      checkReversePath = "loose";
    };
    # A firewall reload must not flush CloudStack's own tables.
    networking.nftables.flushRuleset = false;
  };
}
