# VM test of secrets with sops-nix: "vault" (checks/secrets/hosts/vault, generated
# by kvmfleet) has a host key, and its sops file checks/secrets/secrets/vault.yaml
# is encrypted for that key's age X25519 recipient only. It boots with each secret
# file of its inventory at the path the inventory names, owned and moded for its
# reader: root's password hash (decrypted before users are created; root logs in
# at the console with it), the Ceph keyring (ceph-keyring-cloudstack.service
# installs it for librados) and an iSCSI CHAP password.
#
# checks/secrets/ssh_host_ed25519_key is a throwaway key made for this test and
# kept in the repository for it; nothing else may trust it.
{
  self,
  ...
}:
let
  generated = import ./secrets/hosts/vault/generated.nix;
  # what vault.yaml holds (the test's own values)
  rootHash = "$6$kvmfleetvmtest$hrhGTtOWTsCL/7Lx2lFgzUF.LwaeL3eU475mZwx9YETovCa7GsLirqXRFD9cw9tqRWfP13BrGKwo05T4Npogp1";
  rootPassword = "vault-console-password";
  cephKey = "AQBvbXRlc3Qta3ZtZmxlZXQtdm0tdGVzdC1rZXkwMA==";
in
{
  name = "secrets";

  nodes.vault = {
    imports = [ self.nixosModules.default ];
    kvmfleet.secrets = generated.kvmfleet.secrets // {
      sopsFile = ./secrets/secrets/vault.yaml;
    };
    users.users.root.hashedPasswordFile = generated.users.users.root.hashedPasswordFile;
    services.ceph-client = generated.services.ceph-client;

    # A real host has its key on disk before its first activation (install-plan puts
    # it under /mnt/etc/ssh before nixos-install). A test VM's disk starts empty: an
    # activation snippet ordered before sops-nix's places the test key there.
    system.activationScripts.testHostKey = ''
      install -D -m 0600 ${./secrets/ssh_host_ed25519_key} /etc/ssh/ssh_host_ed25519_key
      install -m 0644 ${./secrets/ssh_host_ed25519_key.pub} /etc/ssh/ssh_host_ed25519_key.pub
    '';
    system.activationScripts.setupSecretsForUsers.deps = [ "testHostKey" ];
  };

  testScript = ''
    vault.wait_for_unit("multi-user.target")

    with subtest("each secret file is at its inventory path, owned and moded for its reader"):
        for path in [
            "/var/lib/secrets/root.hash",
            "/var/lib/secrets/ceph/ceph.client.cloudstack.keyring",
            "/etc/iscsi/chap/target0",
        ]:
            # sops-nix links the path to the decrypted file in its ramfs
            vault.succeed(f"test -L {path}")
            owner_mode = vault.succeed(f"stat -L -c '%U:%G %a' {path}").strip()
            assert owner_mode == "root:root 400", (path, owner_mode)
        vault.succeed("grep -qx 'chap-password-of-the-vm-test' /etc/iscsi/chap/target0")
        # read before users are created: decrypted to secrets-for-users
        target = vault.succeed("readlink -f /var/lib/secrets/root.hash").strip()
        assert target.startswith("/run/secrets-for-users.d/"), target

    with subtest("the Ceph keyring reaches librados' path through its consumer"):
        vault.wait_for_unit("ceph-keyring-cloudstack.service")
        vault.succeed("grep -qF 'key = ${cephKey}' /etc/ceph/ceph.client.cloudstack.keyring")

    with subtest("root's password is the decrypted hash"):
        vault.succeed("getent shadow root | grep -qF 'root:${rootHash}:'")

    with subtest("root logs in at the console with it"):
        vault.send_key("alt-f2")
        vault.wait_until_succeeds("[ $(fgconsole) = 2 ]")
        vault.wait_for_unit("getty@tty2.service")
        vault.wait_until_succeeds("pgrep -f 'agetty.*tty2'")
        vault.wait_until_tty_matches("2", "login: ")
        vault.send_chars("root\n")
        vault.wait_until_tty_matches("2", "login: root")
        vault.wait_until_succeeds("pgrep login")
        vault.wait_until_tty_matches("2", "Password: ")
        vault.send_chars("${rootPassword}\n")
        # a shell on tty2 (the test driver's own root shell has no terminal)
        vault.wait_until_succeeds("pgrep -u root -t tty2 bash")
        vault.send_chars("touch /root/console-login\n")
        vault.wait_for_file("/root/console-login")
  '';
}
