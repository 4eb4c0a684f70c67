"""Table-driven tests of the kubelet's pure pieces: expansion, env, back-off, status, images, files."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from skiff.kubelet.atomic_writer import write_atomically
from skiff.kubelet.backoff import CrashBackoff
from skiff.kubelet.env import EnvError, NodeResources, container_env, service_env
from skiff.kubelet.expansion import expand
from skiff.kubelet.images import ImageError, ImageStore, split_reference
from skiff.kubelet.ipam import Ipam
from skiff.kubelet.sandbox import resolv_conf
from skiff.kubelet.status import ContainerRecord, pod_conditions, pod_phase

ENV = {"A": "alpha", "B": "beta", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("$(A)", "alpha", id="simple"),
        pytest.param("x-$(A)-$(B)-y", "x-alpha-beta-y", id="several"),
        pytest.param("$(NOPE)", "$(NOPE)", id="unknown-literal"),
        pytest.param("$$(A)", "$(A)", id="escaped"),
        pytest.param("$$$(A)", "$alpha", id="escaped-dollar-then-var"),
        pytest.param("$A", "$A", id="no-parens"),
        pytest.param("$(A", "$(A", id="unclosed"),
        pytest.param("end$", "end$", id="trailing-dollar"),
        pytest.param("$(EMPTY)x", "x", id="empty-value"),
        pytest.param("$()", "$()", id="empty-name"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV.get) == expected


def test_crash_backoff_doubles_caps_and_resets() -> None:
    backoff = CrashBackoff()
    delays = [backoff.next_delay(1.0) for _ in range(8)]
    assert delays == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert backoff.next_delay(600.0) == 0.0
    assert backoff.next_delay(1.0) == 10.0


SERVICE = {
    "metadata": {"name": "my-svc"},
    "spec": {
        "clusterIP": "127.254.0.7",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
    },
}


def test_service_env_docker_links() -> None:
    env = service_env(
        [SERVICE, {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}]
    )
    assert env == {
        "MY_SVC_SERVICE_HOST": "127.254.0.7",
        "MY_SVC_SERVICE_PORT": "80",
        "MY_SVC_SERVICE_PORT_HTTP": "80",
        "MY_SVC_PORT": "tcp://127.254.0.7:80",
        "MY_SVC_PORT_80_TCP": "tcp://127.254.0.7:80",
        "MY_SVC_PORT_80_TCP_PROTO": "tcp",
        "MY_SVC_PORT_80_TCP_PORT": "80",
        "MY_SVC_PORT_80_TCP_ADDR": "127.254.0.7",
        "MY_SVC_PORT_53_UDP": "udp://127.254.0.7:53",
        "MY_SVC_PORT_53_UDP_PROTO": "udp",
        "MY_SVC_PORT_53_UDP_PORT": "53",
        "MY_SVC_PORT_53_UDP_ADDR": "127.254.0.7",
    }


def _pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
        "spec": {"nodeName": "n1", "containers": [container]},
        "status": {"podIP": "127.16.0.5", "hostIP": "127.0.1.1"},
    }


SOURCES: dict[tuple[str, str], dict[str, str]] = {
    ("configmap", "cm"): {"k": "v", "other": "o"},
    ("secret", "sec"): {"password": "s3cret"},
}


async def _lookup(kind: str, _namespace: str, name: str) -> dict[str, str] | None:
    return SOURCES.get((kind, name))


NODE = NodeResources(cpu_milli=2000, memory_bytes=4 * 1024**3)


@pytest.mark.parametrize(
    ("env", "env_from", "expected"),
    [
        pytest.param([{"name": "X", "value": "1"}], [], {"X": "1"}, id="value"),
        pytest.param(
            [{"name": "X", "value": "$(Y)"}, {"name": "Y", "value": "y"}],
            [],
            {"X": "$(Y)", "Y": "y"},
            id="forward-reference-stays-literal",
        ),
        pytest.param(
            [{"name": "Y", "value": "y"}, {"name": "X", "value": "<$(Y)>"}],
            [],
            {"Y": "y", "X": "<y>"},
            id="backward-reference",
        ),
        pytest.param(
            [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
            [],
            {"N": "x"},
            id="fieldref-label",
        ),
        pytest.param(
            [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            [],
            {"IP": "127.16.0.5"},
            id="fieldref-podip",
        ),
        pytest.param(
            [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
            [],
            {"C": "2"},
            id="cpu-defaults-to-node",
        ),
        pytest.param(
            [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}}],
            [],
            {"S": "s3cret"},
            id="secret-key",
        ),
        pytest.param(
            [{"name": "O", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}}],
            [],
            {},
            id="optional-missing",
        ),
        pytest.param(
            [{"name": "k", "value": "mine"}],
            [{"configMapRef": {"name": "cm"}}],
            {"k": "mine", "other": "o"},
            id="env-overrides-envfrom",
        ),
        pytest.param([], [{"configMapRef": {"name": "cm"}, "prefix": "P_"}], {"P_k": "v", "P_other": "o"}, id="prefix"),
    ],
)
async def test_container_env(
    env: list[dict[str, Any]], env_from: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    container = {"name": "c", "env": env, "envFrom": env_from}
    assert await container_env(_pod(container), container, {}, _lookup, NODE) == expected


async def test_container_env_missing_configmap_is_config_error() -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}
    with pytest.raises(EnvError, match='configmap "gone" not found'):
        await container_env(_pod(container), container, {}, _lookup, NODE)


async def test_service_env_does_not_override_container_env() -> None:
    container = {
        "name": "c",
        "env": [{"name": "MY_SVC_SERVICE_HOST", "value": "mine"}, {"name": "U", "value": "$(MY_SVC_SERVICE_PORT)"}],
    }
    env = await container_env(_pod(container), container, service_env([SERVICE]), _lookup, NODE)
    assert env["MY_SVC_SERVICE_HOST"] == "mine" and env["U"] == "80"


def _rec(name: str, state: dict[str, Any], last: dict[str, Any] | None = None, ready: bool = False) -> ContainerRecord:
    return ContainerRecord(name, "img", state=state, last_state=last or {}, ready=ready)


RUNNING = {"running": {"startedAt": "t"}}
OK = {"terminated": {"exitCode": 0}}
BAD = {"terminated": {"exitCode": 1}}
WAIT = {"waiting": {"reason": "ContainerCreating"}}
CRASH = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize(
    ("policy", "init", "main", "phase"),
    [
        pytest.param("Always", [], [_rec("a", WAIT)], "Pending", id="creating"),
        pytest.param("Always", [], [_rec("a", RUNNING)], "Running", id="running"),
        pytest.param("Always", [], [_rec("a", CRASH, {"terminated": {"exitCode": 1}})], "Running", id="crash-loop"),
        pytest.param("Never", [], [_rec("a", OK)], "Succeeded", id="succeeded"),
        pytest.param("Never", [], [_rec("a", OK), _rec("b", BAD)], "Failed", id="one-failed"),
        pytest.param("OnFailure", [], [_rec("a", OK)], "Succeeded", id="onfailure-done"),
        pytest.param("Always", [_rec("i", RUNNING)], [_rec("a", WAIT)], "Pending", id="init-running"),
        pytest.param("Never", [_rec("i", BAD)], [_rec("a", WAIT)], "Failed", id="init-failed-never"),
        pytest.param("Always", [_rec("i", OK)], [_rec("a", RUNNING)], "Running", id="init-done"),
    ],
)
def test_pod_phase(policy: str, init: list[ContainerRecord], main: list[ContainerRecord], phase: str) -> None:
    assert pod_phase(policy, init, main) == phase


def test_pod_conditions_keep_scheduled_and_list_unready() -> None:
    existing = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "False", "lastTransitionTime": "old"},
    ]
    main = [_rec("a", RUNNING, ready=True), _rec("b", RUNNING)]
    conditions = {c["type"]: c for c in pod_conditions(existing, "Running", [], main, True, "now")}
    assert conditions["PodScheduled"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["lastTransitionTime"] == "old"
    assert conditions["Ready"]["message"] == "containers with unready status: [b]"
    assert conditions["Initialized"]["status"] == "True"
    assert conditions["PodReadyToStartContainers"]["status"] == "True"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param("python:3", ("python", "3"), id="tag"),
        pytest.param("docker.io/library/python:3.11-slim", ("python", "3.11-slim"), id="docker-hub"),
        pytest.param("busybox", ("busybox", "latest"), id="latest"),
        pytest.param("registry.k8s.io/etcd:3.5.1-0", ("registry.k8s.io/etcd", "3.5.1-0"), id="registry"),
        pytest.param("localhost:5000/app", ("localhost:5000/app", "latest"), id="registry-port"),
    ],
)
def test_split_reference(ref: str, expected: tuple[str, str]) -> None:
    assert split_reference(ref) == expected


async def test_image_resolution() -> None:
    store = ImageStore()
    python = await store.resolve("python:3")
    assert python.argv(["python", "-V"], []) == [sys.executable, "-V"]
    shell = await store.resolve("busybox:1.36")
    assert shell.argv([], ["-c", "true"]) == ["sh", "-c", "true"]
    skiff = await store.resolve("skiff:0.1.0")
    assert skiff.argv([], ["version"])[:3] == [sys.executable, "-m", "skiff.cli.main"]
    etcd = await store.resolve("quay.io/coreos/etcd:v3.4.23")
    assert Path(etcd.argv(["/usr/local/bin/etcd"], [])[0]).name == "etcd"
    with pytest.raises(ImageError, match="this node has Skiff"):
        await store.resolve("skiff:9.9.9")
    with pytest.raises(ImageError, match="nginx"):
        await store.resolve("nginx:1.25")


def test_atomic_writer_swaps_and_prunes(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert not write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert write_atomically(target, {"a": (b"new", 0o644)})
    assert (target / "a").read_text() == "new" and not (target / "dir").exists()
    assert len([p for p in target.iterdir() if p.name.startswith("..") and p.is_dir() and not p.is_symlink()]) == 1


def test_ipam_skips_gateway_and_reuses() -> None:
    ipam = Ipam("127.16.3.0/24")
    assert ipam.allocate("a") == "127.16.3.2"
    assert ipam.allocate("b") == "127.16.3.3"
    ipam.release("a")
    assert ipam.allocate("c") == "127.16.3.2"
    assert ipam.allocate("b") == "127.16.3.3"


def test_resolv_conf_cluster_first() -> None:
    pod = {"metadata": {"namespace": "team"}, "spec": {"dnsConfig": {"options": [{"name": "edns0"}]}}}
    assert resolv_conf(pod, "127.253.0.10", "cluster.local") == (
        "nameserver 127.253.0.10\n"
        "search team.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5 edns0\n"
    )


def test_secret_decoding_roundtrip() -> None:
    from skiff.kubelet.env import decode_secret

    assert decode_secret({"k": base64.b64encode(b"v").decode()}) == {"k": "v"}


def test_readiness_gate_holds_ready_false() -> None:
    existing = [{"type": "example.com/lb", "status": "False"}]
    main = [_rec("a", RUNNING, ready=True)]
    conditions = {c["type"]: c for c in pod_conditions(existing, "Running", [], main, True, "now", ["example.com/lb"])}
    assert conditions["ContainersReady"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "ReadinessGatesNotReady"
    existing[0]["status"] = "True"
    conditions = {c["type"]: c for c in pod_conditions(existing, "Running", [], main, True, "now", ["example.com/lb"])}
    assert conditions["Ready"]["status"] == "True"
