"""The agent's PATH as data (pkgs/cloudstack-agent/path.toml) and the program that checks the
packaged scripts against it (run by package.nix at build time; here on scripts written like
CloudStack's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, host_program

ap: Any = host_program("cloudstack-agent", "agent_path")
DATA = REPO / "pkgs" / "cloudstack-agent" / "path.toml"
MODULE = REPO / "modules" / "cloudstack-agent.nix"

# Written after CloudStack's own scripts (kvmheartbeat.sh, modifyvlan.sh, keystore-setup): what
# the heuristic must and must not take for a command.
SHELL = """\
#!/bin/bash
# a comment naming notacommand
usage() {
  printf "Usage: %s: -i <nfs server ip> \\n" $(basename $0) >&2
}
write_hbLog() {
  Timestamp=`date +%s`
  echo $Timestamp > $hbFile
}
while getopts 'i:p:m:h:r' OPTION
do
  case $OPTION in
  i)
     NfsSvrIP="$OPTARG"
     ;;
  r)
     rflag=1
     ;;
  *)
     usage
     ;;
  esac
done
if [ -n "$MountPoint" ]; then mount -t nfs $NfsSvrIP:$NfsSvrPath $MountPoint; fi
hbFile=$MountPoint/KVMHA/hb-$HostIP
LANG=C timeout 10 virsh list | grep -q running && sudo -n lvs --noheadings
ip link show dev "$vnet" || brctl addbr $br
cat > /tmp/conf <<EOF
heredocword not a command
EOF
echo "quoted | notacommand" ; echo 'single; alsonot'
"$javapath" -version
/usr/bin/absolute --flag
write_hbLog
"""

PYTHON = """\
#!/usr/bin/python3
from cloudutils.utilities import bash
iptables = Command("iptables")
ebtablessave = Command("ebtables-save")
def execute(cmd):
    return bash("-c", cmd).stdout
execute("ipset -L " + name)
subprocess.check_output(["conntrack", "-D", "-s", ip])
os.system('sysctl -w net.ipv4.ip_forward=1')
logging.debug("iptables-like text in a log call, not run")
"""


def test_shell_commands_are_the_first_words_of_simple_commands() -> None:
    assert ap.shell_commands(SHELL) == {
        "basename",
        "date",
        "mount",
        "virsh",
        "grep",
        "lvs",
        "ip",
        "brctl",
        "cat",
    }


def test_quoted_text_arithmetic_and_arrays_are_not_commands() -> None:
    text = """\
#!/bin/sh
# it's a comment with an apostrophe
printf "Usage: $0
    Setup the host
    Remove it
"
addresses=$(ip address | awk '{
    print $2
    split($2, parts, "/")
}' | tr '\\n' ',')
CN="$(hostname --fqdn)"
count=$(( count + 1 ))
(( retries++ ))
nics=(eth0 eth1)
echo "${#nics[@]} nics: $nics" # and `backquoted words` in a comment
"""
    assert ap.shell_commands(text) == {"ip", "awk", "tr", "hostname"}


def test_python_commands_are_the_first_words_given_to_runners() -> None:
    assert ap.python_commands(PYTHON) == {
        "iptables",
        "ebtables-save",
        "ipset",
        "conntrack",
        "sysctl",
    }


def _tree(tmp_path: Path) -> Path:
    scripts = tmp_path / "share" / "cloudstack-common" / "scripts" / "vm" / "network"
    scripts.mkdir(parents=True)
    (scripts / "modifyvlan.sh").write_text(SHELL)
    (scripts / "security_group.py").write_text(PYTHON)
    (scripts / "README").write_text("virsh is mentioned here but this is no script\n")
    hook = tmp_path / "share" / "cloudstack-agent" / "lib"
    hook.mkdir(parents=True)
    (hook / "libvirtqemuhook").write_text("#!/nix/store/x-python3/bin/python3\nCommand('rpm')\n")
    return tmp_path / "share"


def _data(tmp_path: Path, commands: dict[str, str], allow: dict[str, str]) -> Path:
    lines = [
        'scan = ["cloudstack-common/scripts/vm/network", "cloudstack-agent/lib"]',
        "[commands]",
    ]
    lines += [f'"{k}" = "{v}"' for k, v in commands.items()]
    lines += ["[allowlist]"] + [f'"{k}" = "{v}"' for k, v in allow.items()]
    path = tmp_path / "path.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


ALL = dict.fromkeys(
    [
        "basename",
        "date",
        "mount",
        "virsh",
        "grep",
        "lvs",
        "ip",
        "brctl",
        "cat",
        "iptables",
        "ebtables-save",
        "ipset",
        "conntrack",
        "sysctl",
    ],
    "x",
)


def test_scripts_check_names_what_the_path_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    complete = _data(tmp_path, ALL, {"rpm": "RPM hosts only"})
    assert ap.main(["scripts", "--data", str(complete), "--root", str(root)]) == 0
    lacking = {k: v for k, v in ALL.items() if k not in ("lvs", "conntrack")}
    short = _data(tmp_path, lacking, {"rpm": "RPM hosts only"})
    assert ap.main(["scripts", "--data", str(short), "--root", str(root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "conntrack: run by cloudstack-common/scripts/vm/network/security_group.py; add it to "
        "path.toml [commands] (or, if NixOS deliberately lacks it, to [allowlist] with the reason)",
        "lvs: run by cloudstack-common/scripts/vm/network/modifyvlan.sh; add it to path.toml "
        "[commands] (or, if NixOS deliberately lacks it, to [allowlist] with the reason)",
    ]
    # The allowlist counts as known, the hook without extension is read by its shebang.
    no_allow = _data(tmp_path, ALL, {})
    assert ap.main(["scripts", "--data", str(no_allow), "--root", str(root)]) == 1
    assert capsys.readouterr().err.startswith("rpm: run by cloudstack-agent/lib/libvirtqemuhook")


def test_bins_check_finds_each_promised_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "virsh").write_text("")
    data = _data(tmp_path, {"virsh": "@libvirt", "lvs": "lvm2", "sudo": "@wrappers"}, {})
    assert ap.main(["bins", "--data", str(data), "--except", "@wrappers", str(bin_dir)]) == 1
    assert capsys.readouterr().err == "lvs: promised by path.toml, found in no PATH directory\n"
    (bin_dir / "lvs").write_text("")
    assert ap.main(["bins", "--data", str(data), "--except", "@wrappers", str(bin_dir)]) == 0


def test_bad_data_is_one_line(tmp_path: Path) -> None:
    clash = _data(tmp_path, {"rpm": "rpm"}, {"rpm": "RPM hosts only"})
    with pytest.raises(SystemExit, match="both provided and allowlisted: rpm"):
        ap.load(clash)
    silent = _data(tmp_path, {}, {"yum": " "})
    with pytest.raises(SystemExit, match=r"\[allowlist\] must map each command to why"):
        ap.load(silent)


def test_the_repository_path_data() -> None:
    data = ap.load(DATA)
    # What the issue found missing from the agent's PATH is provided.
    for command, provider in {"perl": "perl", "lvcreate": "lvm2", "sudo": "@wrappers"}.items():
        assert data.commands[command] == provider
    # Every provider of the module's own is one the module maps to a package or a path.
    module = MODULE.read_text()
    own = {p for p in data.commands.values() if p.startswith("@")}
    for provider in own:
        assert re.search(rf'"{re.escape(provider)}"\s*=', module), provider
    # The module builds the PATH from this file, not from a list of its own.
    assert "pkgs/cloudstack-agent/path.toml" in module
    assert all(d.startswith(("cloudstack-common/", "cloudstack-agent/")) for d in data.scan)


def test_patches_of_paths_fail_the_build_when_they_do_not_apply() -> None:
    """--replace-warn (and the old --replace) let a build succeed whose patch did not apply: the
    agent then fails at run time (a qemu hook that cannot import, a script that is not found)."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("pkgs", "modules")
        for path in sorted((REPO / folder).rglob("*.nix"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"--replace(-warn)?\s", line)
    ]
    assert offenders == []
