"""The host pass's own bookkeeping: it paces Python's garbage collector while it runs and leaves it
exactly as it found it, and its per-run memos never hand one host's answer to another."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from conftest import host_of, host_toml
from kvmfleet.capabilities.storage import shared_subnet_interfaces, storage_nics
from kvmfleet.capability import HostContext
from kvmfleet.host_pass import Task, compute_all

ONE_SUBNET = (
    '[network.interfaces.san0]\naddresses = ["10.1.0.21/24"]\n'
    '[network.interfaces.san1]\naddresses = ["10.1.0.22/24"]\n'
)
TWO_SUBNETS = (
    '[network.interfaces.san0]\naddresses = ["10.1.0.21/24"]\n'
    '[network.interfaces.san1]\naddresses = ["10.2.0.21/24"]\n'
)


@pytest.mark.parametrize("frozen_by_caller", [False, True])
def test_the_collector_is_left_as_it_was_found(tmp_path: Path, frozen_by_caller: bool) -> None:
    if frozen_by_caller:
        gc.freeze()
    try:
        before = (gc.get_threshold(), gc.isenabled())
        frozen = gc.get_freeze_count()
        # a host whose file does not parse: the pass runs without a fleet on disk
        done = compute_all([Task("a", b"[host")], {}, "hosts/site.toml", tmp_path)
        assert done[0].problems  # the pass did run
        assert (gc.get_threshold(), gc.isenabled()) == before
        if frozen_by_caller:
            assert gc.get_freeze_count() >= frozen  # what the caller froze stays frozen
        else:
            assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_a_hosts_storage_nics_are_never_another_hosts() -> None:
    # storage_nics keeps the last host's answer: asking for two hosts in turn must not mix them
    links = (
        '[network.links]\nsan0 = "02:00:00:00:00:02"\nsan1 = "02:00:00:00:00:03"\n'
        '[iscsi]\ninitiator_name = "iqn.2026-11.net.example:a"\n'
        '[iscsi.ifaces.ieth0]\ninterface = "san0"\n'
        '[iscsi.ifaces.ieth1]\ninterface = "san1"\n'
    )
    one = HostContext("a", host_of(host_toml(links + ONE_SUBNET)))
    two = HostContext("b", host_of(host_toml(links + TWO_SUBNETS)))
    for _ in range(2):
        assert shared_subnet_interfaces(one) == ["san0", "san1"]
        assert shared_subnet_interfaces(two) == []
    assert [nic.iface for nic in storage_nics(one)] == ["ieth0", "ieth1"]
    assert storage_nics(one) is storage_nics(one)  # worked out once per host
