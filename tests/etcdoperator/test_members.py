"""Shapes of the objects an EtcdCluster is made of (pure builders, no server)."""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from skiff.etcdoperator import members as m
from skiff.etcdoperator.resources import API_VERSION

UID = "0f4f3c1e-5d7e-4a5e-9d55-1b2f0e0d3c2a"
DNS = "demo.team-a.svc.cluster.local"  # <cluster>.<namespace>.svc<default domain>
PEERS = [
    ("demo-aaaaaaaaaa", f"http://demo-aaaaaaaaaa.{DNS}:2380"),
    ("demo-bbbbbbbbbb", f"http://demo-bbbbbbbbbb.{DNS}:2380"),
]
LISTEN_PEER = "http://$(POD_IP):2380"


def dns_url(member: str) -> str:
    return f"http://{member}.{DNS}:2380"


def cluster(**pod: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"size": 3, "version": "3.5.1"}
    if pod:
        spec["pod"] = pod
    return {
        "apiVersion": API_VERSION,
        "kind": "EtcdCluster",
        "metadata": {"name": "demo", "namespace": "team-a", "uid": UID},
        "spec": spec,
    }


def flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in container["command"][1:])


def test_member_names_are_unique_and_fit_a_dns_label() -> None:
    names = {m.new_member_name("a" * 52) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"a{52}-[a-z0-9]{10}", name)
        assert len(name) == 63


def test_urls_and_selector() -> None:
    assert m.peer_url(cluster(), "demo-cccccccccc") == "http://demo-cccccccccc.demo.team-a.svc.cluster.local:2380"
    assert m.listen_peer_url("127.0.10.3") == "http://127.0.10.3:2380"
    assert m.client_url("127.0.10.3") == "http://127.0.10.3:2379"
    assert m.selector("demo") == {"app": "etcd", "etcd_cluster": "demo"}


def test_owner_reference() -> None:
    assert m.owner_reference(cluster()) == {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdCluster",
        "name": "demo",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_seed_pod_of_a_new_cluster() -> None:
    pod = m.member_pod(cluster(), "demo-seed000000", version="v3.5.1", state="new", peers=[], token="tok-1")
    meta, spec = pod["metadata"], pod["spec"]
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert meta["name"] == "demo-seed000000"
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == {"app": "etcd", "etcd_cluster": "demo", "etcd_node": "demo-seed000000"}
    assert meta["annotations"] == {"etcd.version": "3.5.1"}
    assert meta["ownerReferences"] == [m.owner_reference(cluster())]
    assert spec["hostname"] == "demo-seed000000"
    assert spec["subdomain"] == "demo"
    assert spec["restartPolicy"] == "Always"
    assert spec["automountServiceAccountToken"] is False
    assert "initContainers" not in spec
    assert spec["volumes"] == [{"name": "etcd-data", "persistentVolumeClaim": {"claimName": "demo-seed000000"}}]
    (etcd,) = spec["containers"]
    assert etcd["name"] == "etcd"
    assert etcd["image"] == "quay.io/coreos/etcd:v3.5.1"
    assert etcd["command"][0] == "etcd"
    assert flags(etcd) == {
        "name": "demo-seed000000",
        "data-dir": "/var/etcd/data",
        "listen-peer-urls": LISTEN_PEER,
        "listen-client-urls": "http://$(POD_IP):2379",
        "advertise-client-urls": "http://$(POD_IP):2379",
        "initial-advertise-peer-urls": dns_url("demo-seed000000"),
        "initial-cluster": f"demo-seed000000={dns_url('demo-seed000000')}",
        "initial-cluster-state": "new",
        "initial-cluster-token": "tok-1",
    }
    assert etcd["env"] == [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    assert [(p["name"], p["containerPort"]) for p in etcd["ports"]] == [("client", 2379), ("peer", 2380)]
    probe = etcd["readinessProbe"]
    assert probe["httpGet"]["path"] == "/health"
    assert probe["httpGet"]["port"] == 2379
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (2, 3)
    assert "livenessProbe" not in etcd
    assert etcd["volumeMounts"] == [{"name": "etcd-data", "mountPath": "/var/etcd"}]


def test_joining_member_advertises_its_dns_name_has_no_token_and_no_init_containers() -> None:
    pod = m.member_pod(cluster(), "demo-cccccccccc", version="3.4.23", state="existing", peers=PEERS)
    (etcd,) = pod["spec"]["containers"]
    parsed = flags(etcd)
    assert parsed["initial-cluster-state"] == "existing"
    assert "initial-cluster-token" not in parsed
    assert parsed["initial-cluster"] == (
        f"demo-aaaaaaaaaa={dns_url('demo-aaaaaaaaaa')},"
        f"demo-bbbbbbbbbb={dns_url('demo-bbbbbbbbbb')},"
        f"demo-cccccccccc={dns_url('demo-cccccccccc')}"
    )
    assert parsed["initial-advertise-peer-urls"] == dns_url("demo-cccccccccc")
    assert parsed["listen-peer-urls"] == LISTEN_PEER  # etcd listens on the pod's own address
    assert etcd["image"] == "quay.io/coreos/etcd:v3.4.23"
    assert pod["metadata"]["annotations"]["etcd.version"] == "3.4.23"
    # The operator's MemberAdd precedes the pod, so nothing waits for membership.
    assert "initContainers" not in pod["spec"]


def test_the_peer_url_is_the_pods_own_dns_name() -> None:
    pod = m.member_pod(cluster(), "demo-cccccccccc", version="3.5.1", state="existing", peers=PEERS)
    spec = pod["spec"]
    # hostname.subdomain.<ns>.svc<domain> is the name the headless Service <subdomain> publishes.
    host = f"{spec['hostname']}.{spec['subdomain']}.{pod['metadata']['namespace']}.svc.cluster.local"
    assert flags(spec["containers"][0])["initial-advertise-peer-urls"] == f"http://{host}:2380"
    assert m.peer_service(cluster())["metadata"]["name"] == spec["subdomain"]


def test_self_is_listed_once_at_its_dns_url() -> None:
    peers = [*PEERS, ("demo-cccccccccc", "http://127.0.10.9:2380")]
    pod = m.member_pod(cluster(), "demo-cccccccccc", version="3.5.1", state="existing", peers=peers)
    entries = flags(pod["spec"]["containers"][0])["initial-cluster"].split(",")
    assert [e for e in entries if e.startswith("demo-cccccccccc=")] == [f"demo-cccccccccc={dns_url('demo-cccccccccc')}"]
    assert "127.0.10.9" not in " ".join(entries)


@pytest.mark.parametrize(
    ("domain", "suffix"),
    [
        pytest.param(None, ".svc.cluster.local", id="default"),
        pytest.param("", ".svc.cluster.local", id="empty-is-default"),
        pytest.param(".example.org", ".svc.example.org", id="leading-dot"),
        pytest.param("example.org", ".svc.example.org", id="dot-added"),
    ],
)
def test_cluster_domain(domain: str | None, suffix: str) -> None:
    source = cluster() if domain is None else cluster(ClusterDomain=domain)
    url = f"http://demo-cccccccccc.demo.team-a{suffix}:2380"
    assert m.peer_url(source, "demo-cccccccccc") == url
    pod = m.member_pod(source, "demo-cccccccccc", version="3.5.1", state="new", peers=[], token="t")
    parsed = flags(pod["spec"]["containers"][0])
    assert parsed["initial-advertise-peer-urls"] == url
    assert parsed["initial-cluster"] == f"demo-cccccccccc={url}"
    assert parsed["listen-peer-urls"] == LISTEN_PEER


def test_a_cluster_without_namespace_is_in_default() -> None:
    source = cluster()
    del source["metadata"]["namespace"]
    assert m.peer_url(source, "demo-cccccccccc") == "http://demo-cccccccccc.demo.default.svc.cluster.local:2380"


def test_restored_seed_fetches_and_restores_before_etcd_starts() -> None:
    pod = m.member_pod(
        cluster(),
        "demo-rrrrrrrrrr",
        version="3.5.1",
        state="new",
        peers=[],
        token="tok-2",
        snapshot_url="http://127.0.0.1:19999/v1/backup/demo",
        labels_override={"etcd_cluster": None, "restore": "demo"},
    )
    fetch, restore = pod["spec"]["initContainers"]
    assert fetch["name"] == "fetch-snapshot"
    assert fetch["image"] == "python:3"
    assert fetch["command"][:2] == ["python3", "-c"]
    assert fetch["command"][3:] == ["http://127.0.0.1:19999/v1/backup/demo", "/var/etcd/restore.db", "/var/etcd/data"]
    assert restore["name"] == "restore-datadir"
    assert restore["image"] == "quay.io/coreos/etcd:v3.5.1"
    script = restore["command"][2]
    assert "command -v etcdutl" in script
    assert "ETCDCTL_API=3" in script
    for part in (
        "snapshot restore /var/etcd/restore.db",
        "--name demo-rrrrrrrrrr",
        f"--initial-cluster demo-rrrrrrrrrr={dns_url('demo-rrrrrrrrrr')}",
        "--initial-cluster-token tok-2",
        f"--initial-advertise-peer-urls {dns_url('demo-rrrrrrrrrr')}",
        "if [ -d /var/etcd/data ]",
    ):
        assert part in script
    assert m.POD_IP_ENV in restore["env"]
    assert "POD_IP" not in script  # the restored member's peer URL is its DNS name, not the pod IP
    parsed = flags(pod["spec"]["containers"][0])
    assert (parsed["initial-cluster-state"], parsed["initial-cluster-token"]) == ("new", "tok-2")
    assert parsed["initial-advertise-peer-urls"] == dns_url("demo-rrrrrrrrrr")  # the same URL as the restore
    labels = pod["metadata"]["labels"]
    assert labels == {"app": "etcd", "etcd_node": "demo-rrrrrrrrrr", "restore": "demo"}
    for container in (fetch, restore):
        assert "$(" not in " ".join(container["command"])  # the kubelet would expand $(VAR) in scripts


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"state": "existing", "token": "t", "snapshot_url": "http://x"}, "state 'new'", id="existing"),
        pytest.param({"state": "new", "snapshot_url": "http://x"}, "cluster token", id="no-token"),
    ],
)
def test_member_pod_refuses_inconsistent_requests(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        m.member_pod(cluster(), "demo-xxxxxxxxxx", version="3.5.1", peers=[], **kwargs)


POLICY: dict[str, Any] = {
    "labels": {"team": "storage", "app": "spoofed"},
    "annotations": {"prometheus.io/scrape": "true"},
    "nodeSelector": {"disk": "ssd"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etcd", "effect": "NoSchedule"}],
    "resources": {"requests": {"cpu": "200m"}, "limits": {"memory": "200Mi"}},
    "etcdEnv": [{"name": "ETCD_AUTO_COMPACTION_RETENTION", "value": "1"}],
    "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
}


def test_pod_policy_is_carried() -> None:
    source = cluster(**copy.deepcopy(POLICY))
    snapshot = copy.deepcopy(source)
    pod = m.member_pod(
        source, "demo-pppppppppp", version="3.5.1", state="new", peers=[], token="t", snapshot_url="http://x"
    )
    assert source == snapshot  # the EtcdCluster is never mutated
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"] == {"team": "storage", "app": "etcd", "etcd_cluster": "demo", "etcd_node": "demo-pppppppppp"}
    assert meta["annotations"] == {"prometheus.io/scrape": "true", "etcd.version": "3.5.1"}
    assert spec["nodeSelector"] == POLICY["nodeSelector"]
    assert spec["tolerations"] == POLICY["tolerations"]
    assert spec["securityContext"] == POLICY["securityContext"]
    assert spec["affinity"] == POLICY["affinity"]
    etcd = spec["containers"][0]
    assert etcd["resources"] == POLICY["resources"]
    assert etcd["env"][1:] == POLICY["etcdEnv"]
    assert [c["resources"] for c in spec["initContainers"]] == [POLICY["resources"]] * 2
    etcd["resources"]["requests"]["cpu"] = "1"
    assert source["spec"]["pod"]["resources"]["requests"]["cpu"] == "200m"  # copies, not shared


def test_anti_affinity_is_converted_as_the_original_does() -> None:
    pod = m.member_pod(cluster(antiAffinity=True), "demo-aaaaaaaaaa", version="3.5.1", state="new", peers=[])
    assert pod["spec"]["affinity"] == {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"etcd_cluster": "demo"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    explicit: dict[str, Any] = {"podAffinity": {}}
    pod = m.member_pod(
        cluster(antiAffinity=True, affinity=explicit), "demo-aaaaaaaaaa", version="3.5.1", state="new", peers=[]
    )
    assert pod["spec"]["affinity"] == explicit  # affinity wins over the deprecated flag


def test_repository_is_used_for_every_etcd_image() -> None:
    source = cluster()
    source["spec"]["repository"] = "gcr.io/etcd-development/etcd"
    pod = m.member_pod(source, "demo-aaaaaaaaaa", version="3.5.1", state="new", peers=[], token="t", snapshot_url="x")
    assert pod["spec"]["containers"][0]["image"] == "gcr.io/etcd-development/etcd:v3.5.1"
    fetch, restore = pod["spec"]["initContainers"]
    assert restore["image"] == "gcr.io/etcd-development/etcd:v3.5.1"
    assert fetch["image"] == "python:3"  # not an etcd image


@pytest.mark.parametrize(
    ("pod_policy", "spec"),
    [
        pytest.param(
            {}, {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}, id="default"
        ),
        pytest.param(
            {"persistentVolumeClaimSpec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}},
            {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}},
            id="from-policy",
        ),
    ],
)
def test_member_pvc(pod_policy: dict[str, Any], spec: dict[str, Any]) -> None:
    pvc = m.member_pvc(cluster(**pod_policy), "demo-aaaaaaaaaa")
    assert (pvc["apiVersion"], pvc["kind"]) == ("v1", "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "demo-aaaaaaaaaa"
    assert pvc["metadata"]["namespace"] == "team-a"
    assert pvc["metadata"]["labels"] == {"app": "etcd", "etcd_cluster": "demo", "etcd_node": "demo-aaaaaaaaaa"}
    assert pvc["metadata"]["ownerReferences"] == [m.owner_reference(cluster())]
    assert pvc["spec"] == spec
    pvc["spec"]["resources"]["requests"]["storage"] = "9Gi"
    assert m.DEFAULT_PVC_SPEC["resources"]["requests"]["storage"] == "1Gi"


def test_services() -> None:
    peer, client = m.peer_service(cluster()), m.client_service(cluster())
    assert peer["metadata"]["name"] == "demo"
    assert peer["spec"]["clusterIP"] == "None"
    assert peer["spec"]["publishNotReadyAddresses"] is True
    assert [(p["name"], p["port"]) for p in peer["spec"]["ports"]] == [("client", 2379), ("peer", 2380)]
    assert client["metadata"]["name"] == "demo-client"
    assert client["spec"]["type"] == "ClusterIP"
    assert "publishNotReadyAddresses" not in client["spec"]
    assert [(p["name"], p["port"]) for p in client["spec"]["ports"]] == [("client", 2379)]
    for svc in (peer, client):
        assert svc["spec"]["selector"] == {"app": "etcd", "etcd_cluster": "demo"}
        assert svc["metadata"]["namespace"] == "team-a"
        assert svc["metadata"]["ownerReferences"] == [m.owner_reference(cluster())]


@pytest.mark.parametrize(("size", "minimum"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_disruption_budget_keeps_quorum(size: int, minimum: int) -> None:
    pdb = m.disruption_budget(cluster(), size)
    assert (pdb["apiVersion"], pdb["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert pdb["metadata"]["name"] == "demo"
    assert pdb["metadata"]["ownerReferences"] == [m.owner_reference(cluster())]
    assert pdb["spec"] == {
        "minAvailable": minimum,
        "selector": {"matchLabels": {"app": "etcd", "etcd_cluster": "demo"}},
    }


# -- the fetch-snapshot one-liner, run for real against a loopback HTTP server ------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/ok":
            body = b"snapshot-bytes"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _fetch(url: str, dest: Path, data_dir: Path) -> int:
    cmd = [sys.executable, "-c", m.FETCH_SNAPSHOT_SCRIPT, url, str(dest), str(data_dir)]
    return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode


def test_fetch_snapshot_downloads(http_base: str, tmp_path: Path) -> None:
    assert _fetch(f"{http_base}/ok", tmp_path / "restore.db", tmp_path / "data") == 0
    assert (tmp_path / "restore.db").read_bytes() == b"snapshot-bytes"


def test_fetch_snapshot_fails_on_http_error(http_base: str, tmp_path: Path) -> None:
    assert _fetch(f"{http_base}/missing", tmp_path / "restore.db", tmp_path / "data") != 0
    assert not (tmp_path / "restore.db").exists()


def test_fetch_snapshot_is_skipped_when_data_exists(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    assert _fetch("http://127.0.0.1:1/unreachable", tmp_path / "restore.db", tmp_path / "data") == 0


# -- the restore-datadir script, run for real with each etcd's own tools ---------------------------------


async def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, env=env, timeout=30, check=False)


def _pod_hosts(hosts: Path) -> list[str]:
    """argv prefix running a ``sh -c`` script with ``hosts`` as /etc/hosts (a private mount namespace)."""
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    try:
        usable = subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable:
        pytest.skip("needs unshare with user and mount namespaces (for a pod-like /etc/hosts)")
    wrapper = 'mount --bind "$0" /etc/hosts && exec sh -c "$1"'
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", wrapper, str(hosts)]


@pytest.mark.parametrize("version", ["3.5.1", "3.4.23"])
async def test_restore_script_restores_once_with_the_images_tools(version: str, tmp_path: Path) -> None:
    from skiff.etcd_binaries import find_binaries
    from skiff.store.etcd_process import EtcdMember

    binary = find_binaries()[version]
    snapshot = tmp_path / "restore.db"
    async with await EtcdMember.start(binary, tmp_path / "source") as source:
        ctl = [str(binary.etcdctl), f"--endpoints={source.client_url}"]
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        for args in (["put", "k", "v"], ["snapshot", "save", str(snapshot)]):
            done = await _run([*ctl, *args], env)
            assert done.returncode == 0, done.stderr
    data_dir = tmp_path / "data"
    url = m.peer_url(cluster(), "demo-rrrrrrrrrr")
    script = m.restore_script(
        "demo-rrrrrrrrrr", "tok", self_peer_url=url, data_dir=str(data_dir), snapshot=str(snapshot)
    )
    # etcd 3.5's restore resolves --initial-advertise-peer-urls (netutil, retrying for 30s) and fails on a
    # name that does not resolve; in the pod the kubelet's /etc/hosts maps the pod's own FQDN, so give the
    # script the same /etc/hosts (the name is in no DNS here).
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n10.1.2.3\tdemo-rrrrrrrrrr.demo.team-a.svc.cluster.local\tdemo-rrrrrrrrrr\n")
    in_pod = [*_pod_hosts(hosts), script]
    # The etcd image's PATH: its own binaries first (3.4 has no etcdutl, so etcdctl restores).
    env = {"PATH": f"{binary.etcd.parent}:/usr/bin:/bin", "POD_IP": "10.1.2.3"}
    done = await _run(in_pod, env)
    assert done.returncode == 0, done.stderr
    assert (data_dir / "member" / "snap" / "db").is_file()
    assert any(url.encode() in f.read_bytes() for f in data_dir.rglob("*") if f.is_file())  # membership has it
    assert not snapshot.exists()
    again = await _run(in_pod, env)
    assert again.returncode == 0, again.stderr
    assert b"exists; keeping it" in again.stdout


def test_restore_script_reads_a_pod_ip_from_the_shell_not_the_kubelet() -> None:
    script = m.restore_script("demo-rrrrrrrrrr", "tok", self_peer_url=m.listen_peer_url(m.POD_IP_REF))
    assert "--initial-advertise-peer-urls http://$POD_IP:2380" in script
    assert "$(" not in script
