"""Pure pieces of node registration, cgroup limits and static pods."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skiff.kubelet.cgroups import Cgroups
from skiff.kubelet.node import NodeConfig, capacity, node_conditions, node_labels
from skiff.kubelet.static_pods import static_pod
from skiff.kubelet.status import ContainerRecord


def test_node_labels_and_capacity() -> None:
    config = NodeConfig("n1", "127.0.1.1", 10250, {"node-role.kubernetes.io/control-plane": ""})
    labels = node_labels(config)
    assert labels["kubernetes.io/hostname"] == "n1" and labels["kubernetes.io/os"] == "linux"
    assert labels["beta.kubernetes.io/arch"] == labels["kubernetes.io/arch"]
    assert "node-role.kubernetes.io/control-plane" in labels
    cap = capacity(config)
    assert cap["pods"] == "110" and cap["cpu"] == str(os.cpu_count())
    assert cap["memory"].endswith("Ki") and int(cap["memory"][:-2]) > 0


def test_node_conditions_keep_transition_time_until_status_changes() -> None:
    first = node_conditions([], True, "", "t1")
    assert {c["type"] for c in first} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    ready = next(c for c in first if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    second = {c["type"]: c for c in node_conditions(first, True, "", "t2")}
    assert second["Ready"]["lastTransitionTime"] == "t1" and second["Ready"]["lastHeartbeatTime"] == "t2"
    third = {c["type"]: c for c in node_conditions(first, False, "runtime down", "t3")}
    assert third["Ready"]["lastTransitionTime"] == "t3" and third["Ready"]["message"] == "runtime down"


@pytest.mark.parametrize("v2", [pytest.param(False, id="v1"), pytest.param(True, id="v2")])
def test_cgroup_limits_written(tmp_path: Path, v2: bool) -> None:
    assert os.geteuid() == 0
    if v2:
        (tmp_path / "cgroup.controllers").write_text("memory cpu pids")
    else:
        for controller in ("memory", "cpu", "pids"):
            (tmp_path / controller).mkdir()
    cgroups = Cgroups(tmp_path)
    dirs = cgroups.create("uid1", "c", 50 * 1024 * 1024, 500)
    if v2:
        assert dirs == [tmp_path / "skiff" / "uid1" / "c"]
        assert (dirs[0] / "memory.max").read_text() == str(50 * 1024 * 1024)
        assert (dirs[0] / "cpu.max").read_text() == "50000 100000"
        (dirs[0] / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    else:
        assert (tmp_path / "memory" / "skiff" / "uid1" / "c" / "memory.limit_in_bytes").read_text() == str(52428800)
        assert (tmp_path / "cpu" / "skiff" / "uid1" / "c" / "cpu.cfs_quota_us").read_text() == "50000"
        (tmp_path / "memory" / "skiff" / "uid1" / "c" / "memory.oom_control").write_text(
            "oom_kill_disable 0\noom_kill 1\n"
        )
    assert cgroups.oom_killed("uid1", "c")


def test_static_pod_naming_and_stable_uid(tmp_path: Path) -> None:
    manifest = {"metadata": {"name": "etcd"}, "spec": {"containers": [{"name": "etcd", "image": "etcd:3.5"}]}}
    pod = static_pod(manifest, "node-a", tmp_path / "etcd.yaml")
    again = static_pod(manifest, "node-a", tmp_path / "etcd.yaml")
    assert pod["metadata"]["name"] == "etcd-node-a" and pod["metadata"]["namespace"] == "default"
    assert pod["spec"]["nodeName"] == "node-a"
    assert (
        pod["metadata"]["uid"]
        == again["metadata"]["uid"]
        == pod["metadata"]["annotations"]["kubernetes.io/config.hash"]
    )
    changed = static_pod(
        {**manifest, "spec": {"containers": [{"name": "etcd", "image": "etcd:3.4"}]}}, "node-a", tmp_path / "etcd.yaml"
    )
    assert changed["metadata"]["uid"] != pod["metadata"]["uid"]


def test_container_record_status_shape() -> None:
    record = ContainerRecord("c", "busybox", image_id="busybox@sha256:x", container_id="skiff://1")
    status = record.to_status()
    assert status["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["containerID"] == "skiff://1" and status["ready"] is False and status["restartCount"] == 0
