"""`kvmfleet install-plan`: the exact commands that make a bare machine a fleet member from the
NixOS minimal ISO (disko, hardware capture without file systems, nixos-install), and the fleet
overview the installer ISO prints at login."""

from __future__ import annotations

import shlex

from kvmfleet.capabilities import secret_files
from kvmfleet.capabilities.install import target_host
from kvmfleet.capabilities.sops import provisioned
from kvmfleet.capability import HostContext
from kvmfleet.generate import Fleet, HostResult
from kvmfleet.inventory import HARDWARE_FILE, HOST_KEY_FILE, HOSTS_DIR
from kvmfleet.sopsconfig import secrets_file

NIX = "nix --extra-experimental-features 'nix-command flakes'"
# Where the plan keeps the captured hardware.nix on the installed disk: the live system's checkout
# is on tmpfs and is gone at reboot. Under /etc/nixos, which NixOS leaves to the administrator.
KEPT_DIR = "/etc/nixos"


def _scp_host(target: str) -> str:
    """scp's [user@]host: an IPv6 address in brackets."""
    return f"root@[{target}]" if ":" in target else f"root@{target}"


def _describe(result: HostResult) -> str:
    disk = result.host.disk
    parts = [f"{disk.table} table", f"{disk.filesystem} root"]
    if disk.encrypt:
        parts.append("LUKS-encrypted")
    if disk.swap is not None:
        parts.append(f"{disk.swap} swap")
    loader = "GRUB (BIOS)" if result.host.boot.loader == "grub" else "systemd-boot (UEFI)"
    return f"{', '.join(parts)}; {loader}"


def host_plan(result: HostResult) -> str:
    """The commands for one host, run as root in a checkout of the fleet's flake."""
    name = result.name
    host = result.host
    device = host.disk.device
    flake = shlex.quote(f".#{name}")
    relative = f"{HOSTS_DIR}/{name}/{HARDWARE_FILE}"
    hardware = shlex.quote(relative)
    kept = f"{KEPT_DIR}/{relative}"
    fetch = shlex.quote(f"{_scp_host(target_host(HostContext(name, host)))}:{kept}")
    passphrase = (
        "\n#    disko asks for the new LUKS passphrase (typed again at every boot)."
        if host.disk.encrypt
        else ""
    )
    return f"""\
# Install {name} from the NixOS minimal ISO ({host.host.system}), as root, with the network up,
# in a checkout of this flake (the installer ISO has one in /root/kvmfleet):
#   git clone <fleet repository> /root/kvmfleet && cd /root/kvmfleet
#
# WARNING: step 1 WIPES {device}: every partition and all data on it.
#   Check first that it is {name}'s system disk: lsblk -o NAME,SIZE,MODEL,SERIAL {shlex.quote(device)}
#
# 1. Partition, format and mount {device} on /mnt: {_describe(result)}.{passphrase}
{NIX} run .#disko -- --mode destroy,format,mount --flake {flake}
# 2. Capture the hardware (kernel modules, microcode) without file systems: disko owns them.
nixos-generate-config --root /mnt --no-filesystems --show-hardware-config > {hardware}
git add {hardware}
{_host_key_step(result)}# 3. Install. Root logs in with the inventory's SSH keys only: no root password.
nixos-install --flake {flake} --no-root-passwd
# 4. Keep the captured hardware on the installed disk: this checkout is on the live system's
#    tmpfs and is gone at reboot.
install -D -m 0644 {hardware} {shlex.quote("/mnt" + kept)}
# 5. Boot the new system. Then, in the admin's checkout of the fleet repository, fetch the file
#    and commit it before the next rollout (without it the host is built without its hardware):
#      scp {fetch} {hardware}
#      git add {hardware} && git commit -m {shlex.quote(f"{name}: hardware.nix")}
reboot
"""


def _host_key_step(result: HostResult) -> str:
    """How the new host's SSH host key, which decrypts its secrets, gets there before its
    first boot; or how its secret files are provisioned without one."""
    name = result.name
    ctx = HostContext(name, result.host, result.inventory.host_key)
    needed = provisioned(ctx)
    public = f"{HOSTS_DIR}/{name}/{HOST_KEY_FILE}"
    if needed:
        key = shlex.quote(f"{name}_ssh_host_ed25519_key")
        return f"""\
# 2b. {name} decrypts {secrets_file(name)} ({len(needed)} secret file(s)) with its SSH host key;
#    the public half is {public}. Copy the private half (made beforehand:
#    ssh-keygen -t ed25519 -N '' -C root@{name} -f {key}; never in git) to this installer, then:
install -D -m 0600 {key} /mnt/etc/ssh/ssh_host_ed25519_key
install -m 0644 {key}.pub /mnt/etc/ssh/ssh_host_ed25519_key.pub
#    Without it the host makes a new key and cannot decrypt. Then, after the first boot:
#    ssh-keyscan -t ed25519 {name} | cut -d' ' -f2- > {public}
#    kvmfleet generate && kvmfleet secrets updatekeys {name}; commit; deploy again.
"""
    if secret_files(ctx):
        return f"""\
# 2b. {name}'s secret files are provisioned by hand (no {public}, or [secrets] opts
#    out): put each under /mnt before the first boot (see docs/secrets.md), e.g. root's hash.
"""
    return ""


def overview(fleet: Fleet) -> str:
    """Every host with its disk, for choosing which one this machine becomes."""
    width = max((len(r.name) for r in fleet.hosts), default=0)
    lines = [
        f"  {r.name:<{width}}  {r.host.disk.device}  ({_describe(r)})"
        for r in sorted(fleet.hosts, key=lambda r: r.name)
    ]
    return (
        "kvmfleet: hosts of this fleet and the disk each install wipes:\n"
        + "\n".join(lines)
        + "\nThe exact install commands for one: kvmfleet install-plan HOST\n"
    )
