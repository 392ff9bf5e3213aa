# VM test of the cloudstack capability: the hypervisor "hv" configured with the
# cloudstack part of the module kvmfleet generated from the test inventory in
# checks/cloudstack-agent/hosts/ (kept fresh by tests/test_cloudstack.py), a
# fake management server "mgmt" (a TCP listener on 8250, a libvirt client, an
# SSH client with the management server's key) and "outsider", on the same
# vlan but not in the inventory's trusted networks.
#
# Asserts that:
# - the agent starts with the declared keys merged into agent.properties
#   (/etc/cloudstack/agent resolving to /var/lib/cloudstack/agent) and connects
#   to the management server's port 8250;
# - every command of the agent's PATH data (pkgs/cloudstack-agent/path.toml) is
#   on the agent's PATH, sudo being the setuid wrapper;
# - Add Host's certificate steps work as the management server runs them, over
#   SSH with sudo: keystore-setup (keystore, passphrase, CSR), the test CA signs
#   the CSR, keystore-cert-import (certificate files, libvirt's client
#   certificates linked under /var/lib/pki, cloudstack-setup-agent -s); then
#   the agent's "host secured" check, `virsh -c qemu+tls://<own address>/system`
#   with those client certificates, succeeds on the host itself;
# - libvirt's TLS socket waits for those certificates, then listens on the
#   management address only: mgmt talks to libvirt over qemu+tls with a client
#   certificate of that CA, outsider cannot reach 16514, and 16509 is closed;
# - the qemu hook libvirt runs (hooks/qemu.d/cloudstack) passes its prepare
#   step (it imports CloudStack's cloudutils) and runs hooks/custom scripts;
#   security_group.py can_bridge_firewall on the guest bridge succeeds with the
#   agent's PATH;
# - uefi.properties names firmware files that exist (/run/libvirt/nix-ovmf);
#   the local storage directory and the log directory have upstream's modes;
# - Add Host's `cloudstack-setup-agent -m … -a -s --prvNic=…` records the
#   management server's values and restarts the agent, and refuses values the
#   host declares otherwise;
# - the management server's SSH client (key from the inventory, a non-ETM MAC)
#   logs in and `service cloudstack-agent restart` restarts the agent; an RSA
#   key logs in with rsa-sha2-256 signatures (what CloudStack's SSH client,
#   Jenkins' trilead-ssh2, offers first), and not with ssh-rsa (SHA-1);
# - keys the agent wrote into agent.properties, and the management server list
#   it was sent, survive switch-to-configuration (to a configuration that
#   declares one more key) and a reboot.
#
# The test certificates and the management server's SSH key are test material
# (the key is nixpkgs' RFC 9500 test key), not secrets. The agent configures
# itself against libvirt before it connects: the builder must offer nested KVM.
{
  self,
  pkgs,
  lib,
  ...
}:
let
  generated = import ./cloudstack-agent/hosts/hv/generated.nix;
  pathData = builtins.fromTOML (builtins.readFile ../pkgs/cloudstack-agent/path.toml);
  agent = generated.services.cloudstack-agent;
  hvAddress = lib.head generated.kvmfleet.hypervisor.libvirt.listenAddresses;
  sshKeys = import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs;

  # A CA standing in for the CloudStack CA (it signs hv's CSR in the test, as
  # the management server's CA would) and a client certificate for mgmt.
  certificates =
    pkgs.runCommand "cloudstack-test-certificates" { nativeBuildInputs = [ pkgs.openssl ]; }
      ''
        mkdir $out
        cd $out
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=test-ca \
          -keyout ca.key -out ca.crt \
          -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        printf '%s\n' basicConstraints=CA:FALSE keyUsage=digitalSignature,keyEncipherment \
          extendedKeyUsage=serverAuth,clientAuth > host.ext
        for entry in mgmt:DNS:mgmt; do
          name=''${entry%%:*}
          printf '%s\n' "subjectAltName=''${entry#*:}" basicConstraints=CA:FALSE \
            keyUsage=digitalSignature,keyEncipherment extendedKeyUsage=serverAuth,clientAuth > $name.ext
          openssl req -newkey rsa:2048 -nodes -subj /CN=$name -keyout $name.key -out $name.csr
          openssl x509 -req -days 3650 -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -extfile $name.ext -out $name.crt
        done
      '';

  # The cloudstack capability's part of the generated host module; the rest
  # (boot loader, disks, networkd units) describes a real machine.
  cloudstackOf = {
    services.cloudstack-agent = agent;
    kvmfleet = {
      inherit (generated.kvmfleet) roles hypervisor firewall;
    };
    users.users.root.openssh.authorizedKeys.keys =
      generated.users.users.root.openssh.authorizedKeys.keys;
  };

  expected = {
    inherit (agent)
      guid
      zone
      pod
      cluster
      ;
    host = lib.concatStringsSep "," agent.managementServers;
    address = hvAddress;
    commands = lib.attrNames pathData.commands;
  };
in
{
  name = "cloudstack-agent";

  nodes.hv = {
    imports = [
      self.nixosModules.default
      cloudstackOf
    ];
    # The inventory's bridge, with the test driver's NIC in it (scripted
    # networking, as the driver configures its NICs).
    networking.bridges.cloudbr0.interfaces = [ "eth1" ];
    networking.interfaces = {
      eth1.ipv4.addresses = lib.mkForce [ ];
      eth1.ipv6.addresses = lib.mkForce [ ];
      cloudbr0.ipv4.addresses = [
        {
          address = hvAddress;
          prefixLength = 24;
        }
      ];
    };
    virtualisation.memorySize = 2048;
    # One more declared key, to switch to.
    specialisation.reserved.configuration = {
      services.cloudstack-agent.settings."host.reserved.mem.mb" = "1024";
    };
  };

  nodes.mgmt = {
    environment.systemPackages = [
      pkgs.libvirt
      pkgs.netcat
    ];
    networking.firewall.allowedTCPPorts = [ 8250 ];
    # Accepts the agent's connections and keeps them open.
    systemd.services.agent-listener = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "${lib.getExe pkgs.socat} TCP4-LISTEN:8250,fork,reuseaddr SYSTEM:'sleep 3600'";
    };
  };

  nodes.outsider = {
    environment.systemPackages = [ pkgs.netcat ];
  };

  testScript = ''
    import json
    import shlex

    EXPECTED = json.loads(${builtins.toJSON (builtins.toJSON expected)})
    ADDRESS = EXPECTED["address"]
    AGENT_DIR = "/etc/cloudstack/agent"
    PROPERTIES = f"{AGENT_DIR}/agent.properties"
    UTIL = "/usr/share/cloudstack-common/scripts/util"
    TLS_URI = f"qemu+tls://{ADDRESS}/system?pkipath=/root/pki"
    # The management server's SSH client: its key, a non-ETM MAC and a CTR cipher (trilead).
    SSH = "ssh -i /root/ms-key -o StrictHostKeyChecking=no -o MACs=hmac-sha2-256 -o Ciphers=aes128-ctr"


    def properties():
        """agent.properties as a dict (the agent's files are simple key=value lines)."""
        text = hv.succeed(f"cat {PROPERTIES}")
        pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
        return {key.strip(): value.strip() for key, value in pairs}


    def cursor():
        return hv.succeed("journalctl --show-cursor -n 0 -q | sed -n 's/^-- cursor: //p'").strip()


    def agent_stopped_since(mark):
        """Whether systemd stopped the agent on request (a restart) after the journal cursor."""
        log = hv.succeed(f"journalctl -q -u cloudstack-agent.service --after-cursor='{mark}'")
        return "Stopping" in log


    def agent_path():
        """The PATH the agent (and so every script it runs) has."""
        environment = hv.succeed("systemctl show -p Environment --value cloudstack-agent.service")
        [path] = [word[len("PATH="):] for word in environment.split() if word.startswith("PATH=")]
        return path


    def as_management_server(*args):
        """A command on hv as the management server runs it: over SSH, as root, through sudo
        (each argument quoted for the remote shell, which gets them as one string)."""
        remote = " ".join(shlex.quote(arg) for arg in ("sudo", *args))
        return mgmt.succeed(f"{SSH} root@{ADDRESS} {shlex.quote(remote)}")


    def encoded(pem):
        """keystore-cert-import's argument form: newlines as ^, spaces as ~."""
        return pem.strip().replace("\n", "^").replace(" ", "~")


    start_all()
    hv.wait_for_unit("multi-user.target")
    mgmt.wait_for_unit("agent-listener.service")
    mgmt.succeed("install -m 600 ${sshKeys.snakeOilPrivateKey} /root/ms-key")

    with subtest("the agent runs with the declared keys and connects to the management server"):
        hv.succeed("test \"$(readlink -f /etc/cloudstack/agent)\" = /var/lib/cloudstack/agent")
        hv.wait_until_succeeds(f"test -s {PROPERTIES}")
        props = properties()
        for key in ("guid", "zone", "pod", "cluster", "host"):
            assert props.get(key) == EXPECTED[key], (key, props.get(key))
        assert props.get("private.network.device") == "cloudbr0", props
        mgmt.wait_until_succeeds(
            f"ss -Htn state established '( sport = :8250 )' | grep -q '{ADDRESS}'", timeout=600
        )

    with subtest("every command of the agent's PATH data is on its PATH"):
        path = agent_path()
        missing = hv.succeed(
            f"for c in {' '.join(EXPECTED['commands'])}; do PATH={path} command -v $c >/dev/null || echo $c; done"
        ).split()
        assert missing == [], missing
        assert hv.succeed(f"PATH={path} command -v sudo").strip() == "/run/wrappers/bin/sudo"

    with subtest("local storage and log directories have upstream's modes"):
        assert hv.succeed("stat -c '%a %U' /var/lib/libvirt/images").split() == ["711", "root"]
        assert hv.succeed("stat -c '%a %U' /var/log/cloudstack/agent").split() == ["770", "root"]

    with subtest("Add Host's certificate steps, run as the management server runs them"):
        hv.fail("ss -Htln '( sport = :16514 )' | grep -q 16514")
        csr = as_management_server(
            f"{UTIL}/keystore-setup",
            PROPERTIES,
            f"{AGENT_DIR}/cloud.jks",
            "test-passphrase",
            "365",
            f"{AGENT_DIR}/cloud.csr",
        )
        assert "BEGIN NEW CERTIFICATE REQUEST" in csr, csr
        assert properties().get("keystore.passphrase") == "test-passphrase"
        # The CA signs the CSR, keeping the addresses keystore-setup put in it.
        mgmt.succeed(
            "install -m 600 ${certificates}/ca.key /root/ca.key",
            f"echo {shlex.quote(csr)} | sed -n '/BEGIN NEW CERTIFICATE REQUEST/,$p' > /root/hv.csr",
            "openssl x509 -req -in /root/hv.csr -CA ${certificates}/ca.crt -CAkey /root/ca.key"
            + " -CAcreateserial -CAserial /root/ca.srl -days 365 -copy_extensions copyall"
            + " -extfile ${certificates}/host.ext -out /root/hv.crt",
        )
        certificate = mgmt.succeed("cat /root/hv.crt")
        ca = mgmt.succeed("cat ${certificates}/ca.crt")
        # No private key: keystore-cert-import exports it from the keystore keystore-setup made.
        as_management_server(
            f"{UTIL}/keystore-cert-import",
            PROPERTIES,
            f"{AGENT_DIR}/cloud.jks",
            "ssh",
            f"{AGENT_DIR}/cloud.crt",
            encoded(certificate),
            f"{AGENT_DIR}/cloud.ca.crt",
            encoded(ca),
            f"{AGENT_DIR}/cloud.key",
            "",
        )
        hv.succeed(
            f"openssl x509 -noout -in {AGENT_DIR}/cloud.crt",
            f"openssl rsa -noout -in {AGENT_DIR}/cloud.key",
            "test -L /var/lib/pki/CA/cacert.pem",
            "test -L /var/lib/pki/libvirt/private/clientkey.pem",
        )
        hv.wait_until_succeeds(f"ss -Htln '( sport = :16514 )' | grep -q '{ADDRESS}:16514'")
        # What the agent checks once the host is secured: libvirt over TLS to itself, with the
        # client certificates keystore-cert-import linked where NixOS's libvirt reads them.
        hv.wait_until_succeeds(f"virsh -c qemu+tls://{ADDRESS}/system version")

    with subtest("libvirt's TLS socket listens to the trusted network only"):
        hv.fail("ss -Htln '( sport = :16514 )' | grep -q '\\*:16514'")
        mgmt.succeed(
            "mkdir -p /root/pki",
            "install -m 644 ${certificates}/ca.crt /root/pki/cacert.pem",
            "install -m 644 ${certificates}/mgmt.crt /root/pki/clientcert.pem",
            "install -m 600 ${certificates}/mgmt.key /root/pki/clientkey.pem",
        )
        mgmt.wait_until_succeeds(f"virsh -c '{TLS_URI}' version")
        outsider.fail(f"nc -z -w 5 {ADDRESS} 16514")
        mgmt.fail(f"nc -z -w 5 {ADDRESS} 16509")

    with subtest("the qemu hook's prepare step and security_group.py run"):
        hook = "/var/lib/libvirt/hooks/qemu.d/cloudstack"
        target = hv.succeed(f"readlink -f {hook}").strip()
        assert target.endswith("/share/cloudstack-agent/lib/libvirtqemuhook"), target
        # A custom script for "prepare": the hook runs it only once it got that far.
        hv.succeed(
            "mkdir -p /etc/libvirt/hooks/custom",
            "printf '#!/bin/sh\\necho \"$@\" > /tmp/hook-ran\\n' > /etc/libvirt/hooks/custom/prepare_marker",
            "chmod 755 /etc/libvirt/hooks/custom/prepare_marker",
            f"echo '<domain/>' | {hook} i-2-3-VM prepare begin -",
        )
        assert hv.succeed("cat /tmp/hook-ran").split() == ["i-2-3-VM", "prepare", "begin", "-"]
        hv.succeed(
            f"PATH={agent_path()} /usr/share/cloudstack-common/scripts/vm/network/security_group.py"
            + " can_bridge_firewall --privnic cloudbr0",
            "test -s /var/log/cloudstack/agent/security_group.log",
        )

    with subtest("uefi.properties names firmware files that exist"):
        hv.wait_for_unit("libvirtd.service")
        lines = hv.succeed(f"cat {AGENT_DIR}/uefi.properties").splitlines()
        uefi = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        for key in (
            "guest.loader.legacy",
            "guest.loader.secure",
            "guest.nvram.template.legacy",
            "guest.nvram.template.secure",
        ):
            assert uefi[key].startswith("/run/libvirt/nix-ovmf/"), (key, uefi[key])
            hv.succeed(f"test -s {uefi[key]}")

    with subtest("Add Host: cloudstack-setup-agent records the values and restarts the agent"):
        mark = cursor()
        hv.succeed(
            f"cloudstack-setup-agent -m 192.168.1.2,mgmt -z {EXPECTED['zone']} -p {EXPECTED['pod']}"
            + f" -c {EXPECTED['cluster']} -g {EXPECTED['guid']} -a -s"
            + " --pubNic=cloudbr0 --prvNic=cloudbr0 --guestNic=cloudbr0 --hypervisor=kvm"
        )
        assert properties()["host"] == "192.168.1.2,mgmt"
        assert agent_stopped_since(mark)
        hv.wait_for_unit("cloudstack-agent.service")
        hv.fail(
            "cloudstack-setup-agent -m 192.168.1.2 -z 99 -p 1 -c 1"
            + f" -g {EXPECTED['guid']} -a --pubNic=cloudbr0 --prvNic=cloudbr0 --guestNic=cloudbr0"
        )
        assert properties()["zone"] == EXPECTED["zone"]

    with subtest("the management server's SSH client restarts the agent with `service`"):
        mark = cursor()
        mgmt.succeed(f"{SSH} root@{ADDRESS} service cloudstack-agent restart")
        assert agent_stopped_since(mark)

    with subtest("an RSA key logs in with SHA-2 signatures, not with ssh-rsa (SHA-1)"):
        mgmt.succeed("ssh-keygen -q -t rsa -b 3072 -N ''' -f /root/rsa-key")
        public = mgmt.succeed("cat /root/rsa-key.pub").strip()
        hv.succeed(f"install -d -m 700 /root/.ssh && echo '{public}' >> /root/.ssh/authorized_keys")
        rsa = "ssh -i /root/rsa-key -o StrictHostKeyChecking=no -o IdentitiesOnly=yes -o MACs=hmac-sha2-256"
        mgmt.succeed(f"{rsa} -o PubkeyAcceptedAlgorithms=rsa-sha2-256 root@{ADDRESS} true")
        mgmt.fail(f"{rsa} -o PubkeyAcceptedAlgorithms=ssh-rsa root@{ADDRESS} true")

    with subtest("what the agent wrote survives switch-to-configuration and a reboot"):
        hv.succeed(f"echo local.storage.uuid=5d1b6c2e-0a8f-4d7e-9c3b-2f1e0d9c8b7a >> {PROPERTIES}")
        hv.succeed("/run/current-system/specialisation/reserved/bin/switch-to-configuration test")
        hv.wait_until_succeeds(f"grep -qx 'host.reserved.mem.mb=1024' {PROPERTIES}")
        props = properties()
        assert props["local.storage.uuid"] == "5d1b6c2e-0a8f-4d7e-9c3b-2f1e0d9c8b7a", props
        assert props["host"] == "192.168.1.2,mgmt", props
        hv.shutdown()
        hv.start()
        hv.wait_for_unit("cloudstack-agent.service")
        props = properties()
        assert props["local.storage.uuid"] == "5d1b6c2e-0a8f-4d7e-9c3b-2f1e0d9c8b7a", props
        assert props["host"] == "192.168.1.2,mgmt", props
        assert props["guid"] == EXPECTED["guid"], props
        assert props["keystore.passphrase"] == "test-passphrase", props
  '';
}
