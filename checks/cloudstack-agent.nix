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
# - libvirt's TLS socket waits for the CloudStack CA's certificates, then
#   (cloudstack-setup-agent -s, as keystore-cert-import runs it) listens on the
#   management address only: mgmt talks to libvirt over qemu+tls with a client
#   certificate of that CA, outsider cannot reach 16514, and 16509 is closed;
# - Add Host's `cloudstack-setup-agent -m … -a -s --prvNic=…` records the
#   management server's values and restarts the agent, and refuses values the
#   host declares otherwise;
# - the management server's SSH client (key from the inventory, a non-ETM MAC)
#   logs in and `service cloudstack-agent restart` restarts the agent;
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
  agent = generated.services.cloudstack-agent;
  hvAddress = lib.head generated.kvmfleet.hypervisor.libvirt.listenAddresses;
  sshKeys = import (pkgs.path + "/nixos/tests/ssh-keys.nix") pkgs;

  # A CA standing in for the CloudStack CA, a server/client certificate for hv
  # (what keystore-cert-import installs) and a client certificate for mgmt.
  certificates =
    pkgs.runCommand "cloudstack-test-certificates" { nativeBuildInputs = [ pkgs.openssl ]; }
      ''
        mkdir $out
        cd $out
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=test-ca \
          -keyout ca.key -out ca.crt \
          -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        for entry in hv:IP:${hvAddress},DNS:hv mgmt:DNS:mgmt; do
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

    EXPECTED = json.loads(${builtins.toJSON (builtins.toJSON expected)})
    ADDRESS = EXPECTED["address"]
    PROPERTIES = "/etc/cloudstack/agent/agent.properties"
    TLS_URI = f"qemu+tls://{ADDRESS}/system?pkipath=/root/pki"


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


    start_all()
    hv.wait_for_unit("multi-user.target")
    mgmt.wait_for_unit("agent-listener.service")

    with subtest("the agent runs with the declared keys and connects to the management server"):
        hv.succeed("test \"$(readlink -f /etc/cloudstack/agent)\" = /var/lib/cloudstack/agent")
        hv.wait_until_succeeds(f"test -s {PROPERTIES}")
        props = properties()
        for key in ("guid", "zone", "pod", "cluster", "host"):
            assert props.get(key) == EXPECTED[key], (key, props.get(key))
        assert props.get("private.network.device") == "cloudbr0", props
        hv.succeed("test -x /usr/share/cloudstack-common/scripts/util/keystore-setup")
        mgmt.wait_until_succeeds(
            f"ss -Htn state established '( sport = :8250 )' | grep -q '{ADDRESS}'", timeout=600
        )

    with subtest("libvirt listens with the CloudStack CA's certificates, to the trusted network only"):
        hv.fail("ss -Htln '( sport = :16514 )' | grep -q 16514")
        hv.succeed(
            "install -m 600 ${certificates}/ca.crt /etc/cloudstack/agent/cloud.ca.crt",
            "install -m 600 ${certificates}/hv.crt /etc/cloudstack/agent/cloud.crt",
            "install -m 600 ${certificates}/hv.key /etc/cloudstack/agent/cloud.key",
            "cloudstack-setup-agent -s",
        )
        hv.wait_until_succeeds(f"ss -Htln '( sport = :16514 )' | grep -q '{ADDRESS}:16514'")
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

    with subtest("Add Host: cloudstack-setup-agent records the values and restarts the agent"):
        mark = cursor()
        hv.succeed(
            f"cloudstack-setup-agent -m 192.168.1.2,mgmt -z {EXPECTED['zone']} -p {EXPECTED['pod']}"
            f" -c {EXPECTED['cluster']} -g {EXPECTED['guid']} -a -s"
            " --pubNic=cloudbr0 --prvNic=cloudbr0 --guestNic=cloudbr0 --hypervisor=kvm"
        )
        assert properties()["host"] == "192.168.1.2,mgmt"
        assert agent_stopped_since(mark)
        hv.wait_for_unit("cloudstack-agent.service")
        hv.fail(
            "cloudstack-setup-agent -m 192.168.1.2 -z 99 -p 1 -c 1"
            f" -g {EXPECTED['guid']} -a --pubNic=cloudbr0 --prvNic=cloudbr0 --guestNic=cloudbr0"
        )
        assert properties()["zone"] == EXPECTED["zone"]

    with subtest("the management server's SSH client restarts the agent with `service`"):
        mgmt.succeed(
            "install -m 600 ${sshKeys.snakeOilPrivateKey} /root/ms-key",
        )
        mark = cursor()
        mgmt.succeed(
            "ssh -i /root/ms-key -o StrictHostKeyChecking=no -o MACs=hmac-sha2-256"
            f" -o Ciphers=aes128-ctr root@{ADDRESS} service cloudstack-agent restart"
        )
        assert agent_stopped_since(mark)

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
  '';
}
