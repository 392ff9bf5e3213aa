"""The storage capability: [iscsi] and [multipath] -> services.openiscsi, services.iscsi-ifaces,
services.multipath, and for storage NICs in one subnet the ARP sysctls and the reverse-path
exemption; both topologies, the validation rules and the demo fleet."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, copy_fleet, findings_of, fleet_settings, host_toml, run_cli, settings_of
from kvmfleet.generate import build

LINKS = (
    '[network.links]\nmgmt0 = "02:00:00:00:00:01"\nsan0 = "02:00:00:00:00:02"\n'
    'san1 = "02:00:00:00:00:03"\n'
    '[network.interfaces.mgmt0]\naddresses = ["10.0.10.21/24"]\n'
)
ONE_SUBNET = (
    LINKS
    + '[network.interfaces.san0]\naddresses = ["10.1.0.21/24"]\n'
    + '[network.interfaces.san1]\naddresses = ["10.1.0.22/24"]\n'
)
TWO_SUBNETS = (
    LINKS
    + '[network.interfaces.san0]\naddresses = ["10.1.0.21/24"]\n'
    + '[network.interfaces.san1]\naddresses = ["10.2.0.21/24"]\n'
)
IFACES = (
    '[iscsi]\ninitiator_name = "iqn.2026-11.net.example:a"\n'
    '[iscsi.ifaces.ieth0]\ninterface = "san0"\n'
    '[iscsi.ifaces.ieth1]\ninterface = "san1"\n'
)
SINGLE_PORTAL = '[[iscsi.targets]]\nportal = "10.1.0.100"\nifaces = ["ieth0", "ieth1"]\n'
TWO_PORTALS = (
    '[[iscsi.targets]]\nportal = "10.1.0.100:3260"\nifaces = ["ieth0"]\n'
    '[[iscsi.targets]]\nportal = "10.2.0.100:3260"\nifaces = ["ieth1"]\n'
)
EQLOGIC = (
    '[[multipath.devices]]\nvendor = "EQLOGIC"\nproduct = "100E-00"\nno_path_retry = "queue"\n'
)


def _settings(extra: str) -> dict[str, Any]:
    return settings_of(host_toml(extra))


def _errors(extra: str) -> list[str]:
    return [f for f in findings_of(host_toml(extra), "storage") if not f.startswith("warning: ")]


def _warnings(extra: str) -> list[str]:
    return [f for f in findings_of(host_toml(extra), "storage") if f.startswith("warning: ")]


ARP = {
    "net.ipv4.conf.all.arp_ignore": 1,
    "net.ipv4.conf.all.arp_announce": 2,
    "net.ipv4.conf.san0.arp_ignore": 1,
    "net.ipv4.conf.san0.arp_announce": 2,
    "net.ipv4.conf.san1.arp_ignore": 1,
    "net.ipv4.conf.san1.arp_announce": 2,
}


# --- the demo fleet --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kvm01", "kvm02"])
def test_demo_hypervisors_get_multipath_iscsi(name: str) -> None:
    s = fleet_settings(REPO, name)
    assert s["services"]["openiscsi"] == {
        "enable": True,
        "name": f"iqn.2026-11.net.example.cloud:{name}",
    }
    assert s["services"]["iscsi-ifaces"] == {
        "enable": True,
        "ifaces": {"ieth0": {"interface": "san0"}, "ieth1": {"interface": "san1"}},
        "targets": [{"portal": "10.1.0.100:3260", "ifaces": ["ieth0", "ieth1"]}],
        "replacementTimeout": 15,
    }
    assert s["services"]["multipath"] == {
        "enable": True,
        "devices": [
            {
                "vendor": '"EQLOGIC"',
                "product": '"100E-00"',
                "path_grouping_policy": "multibus",
                "path_selector": '"round-robin 0"',
                "path_checker": "tur",
                "failback": "immediate",
            }
        ],
        "defaults": "find_multipaths yes\n",
        "blacklist": '# local disks (every protocol but iSCSI, see blacklist_exceptions)\nprotocol ".*"\n',
        "blacklist_exceptions": 'protocol "scsi:iscsi"\n',
    }
    # same subnet: ARP flux settings and the reverse-path exemption
    sysctl = s["boot"]["kernel"]["sysctl"]
    assert {k: v for k, v in sysctl.items() if ".conf." in k} == ARP
    rules = s["networking"]["firewall"]["extraReversePathFilterRules"]
    assert rules.splitlines()[-1] == 'iifname { "san0", "san1" } accept'
    assert s["boot"]["kernelModules"] == ["dm-round-robin"]


def test_demo_warns_that_queue_if_no_path_is_ignored_for_eqlogic(demo_fleet: Path) -> None:
    host = demo_fleet / "hosts" / "kvm01" / "host.toml"
    text = host.read_text()
    host.write_text(
        text.replace(
            'failback = "immediate"', 'failback = "immediate"\nfeatures = "1 queue_if_no_path"', 1
        )
    )
    result = run_cli("generate", root=demo_fleet)
    assert result.code == 0, result.err
    assert (
        'warning: hosts/kvm01/host.toml: multipath.devices[0].features: "queue_if_no_path" is '
        'deprecated in multipath-tools: set no_path_retry = "queue" (or a number of retries), '
        "which takes precedence over it; multipath-tools' built-in EQLOGIC 100E-00 entry sets "
        "no_path_retry 30, so the feature is ignored here"
    ) in result.err.splitlines()


def test_laptop_gets_no_storage_settings() -> None:
    s = fleet_settings(REPO, "x1carbon")
    assert "openiscsi" not in s.get("services", {})
    assert "multipath" not in s.get("services", {})


# --- topologies ------------------------------------------------------------------------------------


def test_one_subnet_single_portal() -> None:
    s = _settings(ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC)
    assert s["boot"]["kernel"]["sysctl"] == ARP
    assert s["networking"]["firewall"]["extraReversePathFilterRules"] == (
        "# iSCSI NICs in one subnet: the route back to the SAN names only one of them\n"
        'iifname { "san0", "san1" } accept\n'
    )
    # default port, both ifaces
    assert s["services"]["iscsi-ifaces"]["targets"] == [
        {"portal": "10.1.0.100:3260", "ifaces": ["ieth0", "ieth1"]}
    ]
    assert _errors(ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC) == []
    assert _warnings(ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC) == []


def _source_routing(s: dict[str, Any]) -> dict[str, Any]:
    """Per network unit: its routing policy rules and routes, where it has any."""
    networks = s["systemd"]["network"]["networks"]
    return {
        name: {k: unit[k] for k in ("routingPolicyRules", "routes") if k in unit}
        for name, unit in networks.items()
        if "routingPolicyRules" in unit or "routes" in unit
    }


def test_one_subnet_each_nic_answers_from_its_own_table() -> None:
    s = _settings(ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC)
    assert _source_routing(s) == {
        "10-san0": {
            "routingPolicyRules": [{"From": "10.1.0.21/32", "Table": 1001, "Priority": 1001}],
            "routes": [{"Destination": "10.1.0.0/24", "Table": 1001}],
        },
        "10-san1": {
            "routingPolicyRules": [{"From": "10.1.0.22/32", "Table": 1002, "Priority": 1002}],
            "routes": [{"Destination": "10.1.0.0/24", "Table": 1002}],
        },
    }
    # the network capability's own settings of those units stay
    assert s["systemd"]["network"]["networks"]["10-san0"]["networkConfig"]["Address"] == [
        "10.1.0.21/24"
    ]


def test_source_routing_covers_ipv6_and_only_addresses_in_a_shared_subnet() -> None:
    net = (
        LINKS.replace('"02:00:00:00:00:03"\n', '"02:00:00:00:00:03"\nsan2 = "02:00:00:00:00:04"\n')
        + '[network.interfaces.san0]\naddresses = ["10.1.0.21/24", "fd00:1::21/64", "10.9.0.1/24"]\n'
        + '[network.interfaces.san1]\naddresses = ["10.1.0.22/24", "fd00:1::22/64"]\n'
        + '[network.interfaces.san2]\naddresses = ["10.2.0.23/24"]\n'
    )
    text = (
        net
        + '[iscsi]\ninitiator_name = "iqn.2026-11.net.example:a"\n'
        + '[iscsi.ifaces.ieth0]\ninterface = "san0"\n[iscsi.ifaces.ieth1]\ninterface = "san1"\n'
        + '[iscsi.ifaces.ieth2]\ninterface = "san2"\n'
        + SINGLE_PORTAL
        + EQLOGIC
    )
    routing = _source_routing(_settings(text))
    # san2 shares no subnet: no table; san0's 10.9.0.1 is in no shared subnet: no rule
    assert routing == {
        "10-san0": {
            "routingPolicyRules": [
                {"From": "10.1.0.21/32", "Table": 1001, "Priority": 1001},
                {"From": "fd00:1::21/128", "Table": 1001, "Priority": 1001},
            ],
            "routes": [
                {"Destination": "10.1.0.0/24", "Table": 1001},
                {"Destination": "fd00:1::/64", "Table": 1001},
            ],
        },
        "10-san1": {
            "routingPolicyRules": [
                {"From": "10.1.0.22/32", "Table": 1002, "Priority": 1002},
                {"From": "fd00:1::22/128", "Table": 1002, "Priority": 1002},
            ],
            "routes": [
                {"Destination": "10.1.0.0/24", "Table": 1002},
                {"Destination": "fd00:1::/64", "Table": 1002},
            ],
        },
    }


def test_two_subnets_need_no_arp_or_reverse_path_settings() -> None:
    text = TWO_SUBNETS + IFACES + TWO_PORTALS + EQLOGIC
    s = _settings(text)
    assert "sysctl" not in s["boot"].get("kernel", {})
    assert "extraReversePathFilterRules" not in s["networking"].get("firewall", {})
    assert _source_routing(s) == {}
    assert s["services"]["iscsi-ifaces"]["targets"] == [
        {"portal": "10.1.0.100:3260", "ifaces": ["ieth0"]},
        {"portal": "10.2.0.100:3260", "ifaces": ["ieth1"]},
    ]
    assert _errors(text) == [] and _warnings(text) == []


def test_two_subnets_with_one_portal_warns_about_the_unreachable_path() -> None:
    assert _warnings(TWO_SUBNETS + IFACES + SINGLE_PORTAL + EQLOGIC) == [
        "warning: iscsi.targets.0.portal: 10.1.0.100 is not in a subnet of san1 (10.2.0.0/24), "
        "the interface of iface ieth1: its session depends on a route through that NIC"
    ]


def test_a_target_without_ifaces_uses_all_of_them_and_ipv6_portals_get_brackets() -> None:
    net = (
        LINKS
        + '[network.interfaces.san0]\naddresses = ["fd00:1::21/64"]\n'
        + '[network.interfaces.san1]\naddresses = ["fd00:1::22/64"]\n'
    )
    text = net + IFACES + '[[iscsi.targets]]\nportal = "[fd00:1::100]"\n' + EQLOGIC
    s = _settings(text)
    assert s["services"]["iscsi-ifaces"]["targets"] == [
        {"portal": "[fd00:1::100]:3260", "ifaces": ["ieth0", "ieth1"]}
    ]
    # ARP is IPv4's: the IPv6 subnet alone needs no ARP sysctls, but the shared subnet still
    # gets the reverse-path exemption (the firewall's check covers both families)
    assert "sysctl" not in s["boot"].get("kernel", {})
    assert "extraReversePathFilterRules" in s["networking"]["firewall"]
    assert _errors(text) == []


def test_host_sysctl_wins_and_a_weaker_one_is_warned_about() -> None:
    text = (
        ONE_SUBNET
        + IFACES
        + SINGLE_PORTAL
        + EQLOGIC
        + '[sysctl]\n"net.ipv4.conf.all.arp_ignore" = 0\n"net.ipv4.conf.san0.arp_announce" = 2\n'
    )
    sysctl = _settings(text)["boot"]["kernel"]["sysctl"]
    assert sysctl["net.ipv4.conf.all.arp_ignore"] == 0
    assert sysctl["net.ipv4.conf.san0.arp_announce"] == 2
    assert sysctl["net.ipv4.conf.san1.arp_ignore"] == 1
    assert _warnings(text) == [
        "warning: sysctl.net.ipv4.conf.all.arp_ignore: is 0, but the storage NICs share a subnet "
        "and need at least 1 (ARP flux: the SAN would send one session's traffic to the other NIC)"
    ]


def test_vlan_storage_nics_are_written_with_slashes_in_sysctl_names() -> None:
    net = (
        LINKS
        + '[network.vlans."san0.10"]\nparent = "san0"\nid = 10\naddresses = ["10.1.0.21/24"]\n'
        + '[network.vlans."san1.10"]\nparent = "san1"\nid = 10\naddresses = ["10.1.0.22/24"]\n'
    )
    text = (
        net
        + '[iscsi]\ninitiator_name = "iqn.2026-11.net.example:a"\n'
        + '[iscsi.ifaces.ieth0]\ninterface = "san0.10"\n[iscsi.ifaces.ieth1]\ninterface = "san1.10"\n'
        + SINGLE_PORTAL
        + EQLOGIC
    )
    sysctl = _settings(text)["boot"]["kernel"]["sysctl"]
    assert sysctl["net.ipv4.conf.san0/10.arp_ignore"] == 1
    assert sysctl["net.ipv4.conf.san1/10.arp_announce"] == 2


# --- session settings and CHAP ---------------------------------------------------------------------


def test_replacement_timeout_target_filter_and_chap_file() -> None:
    text = (
        ONE_SUBNET
        + IFACES.replace("[iscsi.ifaces.ieth0]", "replacement_timeout_s = 5\n[iscsi.ifaces.ieth0]")
        + '[[iscsi.targets]]\nportal = "10.1.0.100:3260"\n'
        + 'target = "iqn.2001-05.com.equallogic:0-af1ff6-vol1"\n'
        + 'chap_secret_file = "/var/lib/secrets/iscsi/chap"\n'
        + EQLOGIC
    )
    service = _settings(text)["services"]["iscsi-ifaces"]
    assert service["replacementTimeout"] == 5
    assert service["targets"] == [
        {
            "portal": "10.1.0.100:3260",
            "ifaces": ["ieth0", "ieth1"],
            "target": "iqn.2001-05.com.equallogic:0-af1ff6-vol1",
            "chapSecretFile": "/var/lib/secrets/iscsi/chap",
        }
    ]


# --- multipath.conf --------------------------------------------------------------------------------


def test_multipath_values_are_written_as_multipath_conf_reads_them() -> None:
    text = (
        ONE_SUBNET
        + IFACES
        + SINGLE_PORTAL
        + '[[multipath.devices]]\nvendor = "COMPELNT"\nproduct = "Compellent Vol"\n'
        + 'path_selector = "service-time 0"\nfailback = 15\nno_path_retry = 12\n'
        + "rr_min_io_rq = 1\n"
        + '[multipath]\nfind_multipaths = "strict"\niscsi_only = false\n'
        + '[multipath.blacklist]\nwwids = ["3600508b1001c5e3c6a7f0d0e1f2a3b4c"]\n'
        + '[[multipath.blacklist.devices]]\nvendor = "DELL"\nproduct = "PERC.*"\n'
    )
    s = _settings(text)
    multipath = s["services"]["multipath"]
    assert multipath["devices"] == [
        {
            "vendor": '"COMPELNT"',
            "product": '"Compellent Vol"',
            "path_selector": '"service-time 0"',
            "failback": "15",
            "rr_min_io_rq": 1,
            "no_path_retry": "12",
        }
    ]
    assert multipath["defaults"] == "find_multipaths strict\n"
    assert multipath["blacklist"] == (
        'wwid "^3600508b1001c5e3c6a7f0d0e1f2a3b4c$"\n'
        'device {\n  vendor "DELL"\n  product "PERC.*"\n}\n'
    )
    assert "blacklist_exceptions" not in multipath
    assert s["boot"]["kernelModules"] == ["dm-service-time"]
    assert _warnings(text) == []


def test_no_path_retry_set_means_no_eqlogic_note() -> None:
    text = ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC + 'features = "1 queue_if_no_path"\n'
    (line,) = _warnings(text)
    assert "is deprecated" in line and "built-in" not in line


def test_several_ifaces_without_multipath_are_warned_about() -> None:
    assert _warnings(ONE_SUBNET + IFACES + SINGLE_PORTAL) == [
        "warning: iscsi.targets: logs in through several ifaces without [multipath]: every LUN "
        "appears once per session as a separate disk; add [multipath] (e.g. [[multipath.devices]])"
    ]


# --- validation ------------------------------------------------------------------------------------


def test_unknown_and_addressless_interfaces() -> None:
    text = (
        LINKS
        + '[network.interfaces.san0]\naddresses = ["10.1.0.21/24"]\n'
        + IFACES.replace('interface = "san1"', 'interface = "san9"')
        + '[iscsi.ifaces.ieth2]\ninterface = "san1"\n'
        + '[[iscsi.targets]]\nportal = "10.1.0.100"\nifaces = ["ieth0", "ieth3"]\n'
        + EQLOGIC
    )
    assert _errors(text) == [
        'iscsi.ifaces.ieth1.interface: "san9" is not an interface defined under [network]',
        'iscsi.ifaces.ieth2.interface: "san1" has no address (addresses, dhcp or accept_ra under '
        "[network]): iSCSI sessions bound to it could not connect",
        'iscsi.targets.0.ifaces.1: "ieth3" is not defined in [iscsi.ifaces]',
    ]


def test_a_dhcp_storage_nic_counts_as_addressed() -> None:
    text = (
        LINKS
        + '[network.interfaces.san0]\ndhcp = "ipv4"\n'
        + '[network.interfaces.san1]\naddresses = ["10.1.0.22/24"]\n'
        + IFACES
        + SINGLE_PORTAL
        + EQLOGIC
    )
    assert _errors(text) == [] and _warnings(text) == []


def test_duplicate_discovery_and_a_target_without_ifaces() -> None:
    text = (
        ONE_SUBNET
        + '[iscsi]\ninitiator_name = "iqn.2026-11.net.example:a"\n'
        + '[[iscsi.targets]]\nportal = "10.1.0.100"\n'
        + '[[iscsi.targets]]\nportal = "10.1.0.100:3260"\n'
    )
    assert _errors(text) == [
        "iscsi.targets.0.ifaces: no iface to log in through: declare [iscsi.ifaces.<name>] with "
        "an interface",
        "iscsi.targets.1.portal: 10.1.0.100:3260 is already discovered by iscsi.targets[0]",
        "iscsi.targets.1.ifaces: no iface to log in through: declare [iscsi.ifaces.<name>] with "
        "an interface",
    ]


def test_iqn_forms() -> None:
    for name in ("iqn.2026-11.net.example:kvm01", "eui.02004567A425678D", "naa.52004567ba64678d"):
        assert _errors(f'[iscsi]\ninitiator_name = "{name}"\n') == []


# --- round trip and the VM test inventory ----------------------------------------------------------

CHECKS = REPO / "checks" / "storage"


def test_vm_test_initiator_has_two_nics_in_one_subnet() -> None:
    s = fleet_settings(CHECKS, "initiator")
    assert s["boot"]["kernel"]["sysctl"] == ARP
    assert s["services"]["iscsi-ifaces"]["ifaces"] == {
        "ieth0": {"interface": "san0"},
        "ieth1": {"interface": "san1"},
    }


def test_storage_settings_evaluate_to_the_intended_data(
    nix_eval: Callable[[Path], Any], tmp_path: Path
) -> None:
    """Both topologies and the VM test's inventory, through the real Nix interpreter."""
    fleets = [copy_fleet(CHECKS, tmp_path / "vmtest")]
    for name, text in (
        (
            "one",
            ONE_SUBNET + IFACES + SINGLE_PORTAL + EQLOGIC + 'features = "1 queue_if_no_path"\n',
        ),
        ("two", TWO_SUBNETS + IFACES + TWO_PORTALS + EQLOGIC),
    ):
        host = tmp_path / name / "hosts" / "a"
        host.mkdir(parents=True)
        (host / "host.toml").write_text(host_toml(text))
        result = run_cli("generate", root=tmp_path / name)
        assert result.code == 0, result.err
        fleets.append(tmp_path / name)
    for root in fleets:
        for built in build(root).hosts:
            evaluated = nix_eval(root / "hosts" / built.name / "generated.nix")
            assert evaluated == json.loads(json.dumps(built.settings))
