"""`kvmfleet cloudstack status|add|rolling-upgrade`: the command line (the work is in actions.py,
imported only when the command runs: the API client is not loaded for other kvmfleet commands).

Exit codes: 0 done / nothing to report; 1 findings (status), a refusal (add: nothing changed) or an
upgrade stopped at a host (rolling-upgrade: resumable); 2 errors (inventory, credentials, API).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Drive the CloudStack management server from the inventory. The API endpoint and the files holding
the API and secret keys come from [cloudstack.api] (usually [roles.hypervisor.cloudstack.api] in
site.toml); zone, pod and cluster are the inventory's database ids, resolved through the API.

exit codes: 0 ok; 1 findings (status), refused (add) or stopped at a host (rolling-upgrade);
2 errors (inventory, credentials, API).
"""

EPILOG = """\
examples:
  kvmfleet cloudstack status                    every CloudStack host of the inventory
  kvmfleet cloudstack status kvm01 --json
  kvmfleet cloudstack add kvm03 --dry-run       print the addHost call
  kvmfleet cloudstack add kvm03
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --dry-run
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --deploy colmena
  kvmfleet cloudstack rolling-upgrade --cluster nixos-a --resume
"""


def add_parser(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Register `cloudstack` and its subcommands on the main parser's subparsers."""
    cs = sub.add_parser(
        "cloudstack",
        help="fleet status, Add Host and rolling upgrades through the CloudStack API",
        formatter_class=fmt,
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    actions = cs.add_subparsers(dest="cs_command", required=True, metavar="ACTION")

    st = actions.add_parser(
        "status",
        help="each host's CloudStack record against the inventory",
        formatter_class=fmt,
        description="For each inventory host with [cloudstack] (or the named ones): its CloudStack host\n"
        "record, matched by IP address then name, its state, resource state, agent version and\n"
        "running guests; findings for what disagrees with the inventory and for hosts CloudStack\n"
        "has in the inventory's clusters that the inventory lacks. Exit 1 on findings.",
    )
    st.add_argument("hosts", nargs="*", metavar="HOST")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    ad = actions.add_parser(
        "add",
        help="addHost for an inventory host",
        formatter_class=fmt,
        description="Add HOST to its zone, pod and cluster (addHost, hypervisor KVM, user root). The\n"
        "management server logs in with its own SSH key (which the inventory puts in root's\n"
        "authorized keys); --password sends root's password from cloudstack.api.password_file\n"
        "instead. Refused when the host is already registered, when its generated configuration is\n"
        "not fresh (as `generate --check` sees it), or when the cluster holds hosts of another OS.",
    )
    ad.add_argument("host", metavar="HOST")
    ad.add_argument("--dry-run", action="store_true", help="print the call, change nothing")
    ad.add_argument("--password", action="store_true", help="log in with root's password file")
    ad.add_argument("--json", action="store_true", help="print the new host record as JSON")
    ad.add_argument(
        "--timeout", type=float, default=900.0, metavar="S", help="addHost timeout (default 900)"
    )

    ru = actions.add_parser(
        "rolling-upgrade",
        help="upgrade a cluster one host at a time through maintenance",
        formatter_class=fmt,
        description="For each inventory host of CloudStack cluster NAME, one at a time:\n"
        "prepareHostForMaintenance; wait until CloudStack reports Maintenance (guests migrated);\n"
        "deploy; wait until the agent is Up with the inventory's version; cancelHostMaintenance.\n"
        "Stops at the first failure and leaves that host in maintenance; --resume continues.",
    )
    ru.add_argument("--cluster", required=True, metavar="NAME", help="CloudStack cluster name")
    ru.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ru.add_argument("--resume", action="store_true", help="continue a stopped upgrade")
    ru.add_argument(
        "--deploy",
        choices=("nixos-rebuild", "colmena"),
        default="nixos-rebuild",
        help="nixos-rebuild switch --flake .#HOST --target-host root@TARGET (default; TARGET: "
        "[deploy] target_host or its default), or colmena apply --on HOST switch",
    )
    ru.add_argument(
        "--deploy-command",
        metavar="CMD",
        help="a command of your own instead, with {host}, {address} (Add Host's) and {target} "
        "(the deploy target) placeholders",
    )
    ru.add_argument("--maintenance-timeout", type=float, default=3600.0, metavar="S")
    ru.add_argument("--agent-timeout", type=float, default=900.0, metavar="S")
    ru.add_argument("--job-timeout", type=float, default=600.0, metavar="S")
    ru.add_argument("--poll", type=float, default=10.0, metavar="S", help="seconds between polls")
    ru.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def run(args: argparse.Namespace, root: Path) -> int:
    from kvmfleet.cloudstack_api import actions

    return actions.run(args, root)
