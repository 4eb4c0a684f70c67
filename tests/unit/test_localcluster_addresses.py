"""Address plans of local clusters: disjoint per slot, remembered per data dir, moved off busy slots."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from skiff.localcluster.addresses import DEFAULT, SLOT_FILE, SLOTS, choose_slot, plan, slot_for


def networks(slot: int) -> list[ipaddress.IPv4Network]:
    a = plan(slot)
    return [
        ipaddress.IPv4Network(cidr)
        for cidr in (a.node_cidr, a.service_cidr, a.cluster_cidr, a.load_balancer_cidr, f"{a.api_address}/32")
    ]


def test_default_data_dir_keeps_the_documented_defaults(tmp_path: Path) -> None:
    assert slot_for(tmp_path, tmp_path) == 0
    assert plan(0) == DEFAULT
    assert DEFAULT.api_address == "127.0.0.1" and DEFAULT.service_cidr == "127.254.0.0/16"


@pytest.mark.parametrize("slot", [1, 42, SLOTS])
def test_slot_plans_are_disjoint_from_each_other_and_the_default(slot: int) -> None:
    mine = networks(slot)
    for other in (0, 1 if slot != 1 else 2):
        for a in mine:
            for b in networks(other):
                assert not a.overlaps(b), (slot, other, a, b)
    for a in mine:
        for b in mine:
            assert a is b or not a.overlaps(b)
    assert all(n.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")) for n in mine)


def test_slot_is_remembered_by_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    slot = choose_slot(data, tmp_path / "default")
    assert (data / SLOT_FILE).read_text().strip() == str(slot)
    (data / SLOT_FILE).write_text("7\n")
    assert choose_slot(data, tmp_path / "default") == 7


def test_a_busy_slot_is_skipped_on_first_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wanted = slot_for(data, tmp_path / "default")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        holder.bind((plan(wanted).api_address, 2379))
        holder.listen()
        chosen = choose_slot(data, tmp_path / "default")
    assert chosen != wanted
    assert chosen == wanted % SLOTS + 1
