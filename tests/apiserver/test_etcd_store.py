"""``skiff apiserver --store https://`` on a real etcd 3.5.1: the semantics the SQLite suites check.

One etcd member (started with :mod:`skiff.store.etcd_process`, on a private
event loop thread, stopped by PID at the end) serves the whole module, over
TLS with ``--client-cert-auth`` (certificates from
:func:`skiff.apiserver.pki.ensure_etcd_pki`).  The module's API server uses it
through ``--store https://`` with ``--etcd-cafile``/``--etcd-certfile``/
``--etcd-keyfile``; the restart and second-server tests start more ``skiff
apiserver`` processes on the same member, as kube-apiserver replicas share one
etcd:

* CRUD, patch (strategic, merge, JSON) and delete of a Deployment and a
  ConfigMap with the real kubectl 1.32 and with the official Python client;
* a stale resourceVersion is a 409 Conflict;
* list pagination (``limit``/``continue``) gives every object once, at one
  resourceVersion;
* watches from a list's resourceVersion (Python client) and ``kubectl get -w``;
* a write through one API server is seen at once by a consistent read
  through another: the second server's watch cache must catch up to etcd's
  current revision before answering (progress notifications when idle);
* objects survive an API server restart, with the same uid and resourceVersion;
* concurrent writes whose admission reads an idle resource (pods: LimitRanges,
  PriorityClasses) all succeed promptly: concurrent progress requests used to
  break the etcd watch stream (gRPC allows one pending write per call) and
  the watch caches re-listed, each create then waiting about a second;
* Secrets written with an aescbc EncryptionConfiguration are ciphertext in etcd (real etcdctl);
* without a client certificate the API server does not start (exit 1, a
  one-line reason), and neither with a plaintext ``etcd://`` to a TLS member.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_harness import (
    KUBECTL,
    Kubectl,
    RunningApiServer,
    kubectl,  # noqa: F401
    running_apiserver,
)
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from conftest import SharedEtcdMembers, etcd_binary
from skiff.apiserver.pki import EtcdPki, ensure_encryption_config, ensure_etcd_pki
from skiff.store.etcd import EtcdStore
from skiff.store.tls import TlsFiles

pytestmark = pytest.mark.timeout(300)

NS = "default"
ETCD_VERSION = "3.5.1"

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels:
    suite: {suite}
data:
  greeting: hello
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
"""


@dataclass(frozen=True)
class TlsEtcd:
    endpoint: str
    pki: EtcdPki

    def store_args(self) -> tuple[str, ...]:
        """``skiff apiserver``'s flags for this member, as kube-apiserver's --etcd-* flags."""
        return (
            *("--store", f"https://{self.endpoint}", "--etcd-cafile", str(self.pki.ca_cert)),
            *("--etcd-certfile", str(self.pki.client_cert), "--etcd-keyfile", str(self.pki.client_key)),
        )


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsEtcd]:
    """A real etcd 3.5.1 of this module's own (not the session's shared one: our servers compact it), TLS only."""
    base = tmp_path_factory.mktemp("etcd")
    pki = ensure_etcd_pki(base)
    members = SharedEtcdMembers(base, tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key))
    try:
        yield TlsEtcd(asyncio.run(members.endpoint(ETCD_VERSION)), pki)
    finally:
        members.close()


@pytest.fixture(scope="module")
def apiserver(etcd: TlsEtcd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    """The module's server (the harness's ``kubectl`` fixture uses it by this name)."""
    with running_apiserver(tmp_path_factory.mktemp("apiserver"), *etcd.store_args()) as server:
        yield server


@pytest.fixture
def api_client(apiserver: RunningApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def get_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.ok("get", *args, "-o", "json"))


def test_deployment_and_configmap_lifecycle_with_kubectl(kubectl: Kubectl) -> None:
    assert kubectl.ok("create", "-f", "-", stdin=DEPLOYMENT.format(name="kc-web")) == "deployment.apps/kc-web created\n"
    assert (
        kubectl.ok("apply", "-f", "-", stdin=CONFIGMAP.format(name="kc-cm", suite="kc")) == "configmap/kc-cm created\n"
    )

    deploy = get_json(kubectl, "deployment", "kc-web")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted by the server
    assert deploy["metadata"]["generation"] == 1
    assert kubectl.ok("get", "deployments", "-o", "name").splitlines().count("deployment.apps/kc-web") == 1
    assert kubectl.ok("get", "configmaps", "-l", "suite=kc", "-o", "name") == "configmap/kc-cm\n"

    kubectl.ok(
        "patch",
        "deployment",
        "kc-web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}',
    )
    kubectl.ok("patch", "configmap", "kc-cm", "--type", "merge", "-p", '{"data":{"m":"1"}}')
    kubectl.ok("patch", "configmap", "kc-cm", "--type", "json", "-p", '[{"op":"add","path":"/data/j","value":"2"}]')
    kubectl.ok("scale", "deployment", "kc-web", "--replicas=4")
    deploy = get_json(kubectl, "deployment", "kc-web")
    assert [(c["name"], c["image"]) for c in deploy["spec"]["template"]["spec"]["containers"]] == [
        ("web", "nginx:1.26")
    ]
    assert (deploy["spec"]["replicas"], deploy["metadata"]["generation"]) == (4, 3)
    assert get_json(kubectl, "configmap", "kc-cm")["data"] == {"greeting": "hello", "m": "1", "j": "2"}

    assert kubectl.ok("delete", "deployment", "kc-web") == 'deployment.apps "kc-web" deleted\n'
    assert kubectl.ok("delete", "configmap", "kc-cm") == 'configmap "kc-cm" deleted\n'
    for kind, name in (("deployment", "kc-web"), ("configmap", "kc-cm")):
        code, _, err = kubectl.run("get", kind, name)
        assert code == 1
        assert "(NotFound)" in err


def test_deployment_and_configmap_with_the_python_client(api_client: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment(NS, _yaml(DEPLOYMENT.format(name="py-web")))
    assert apps.read_namespaced_deployment("py-web", NS).metadata.uid == created.metadata.uid
    patched = apps.patch_namespaced_deployment("py-web", NS, {"metadata": {"labels": {"tier": "fe"}}})
    assert patched.metadata.labels == {"tier": "fe"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS, label_selector="tier=fe").items] == ["py-web"]

    cm = core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name="py-cm", suite="py")))
    cm = core.patch_namespaced_config_map("py-cm", NS, {"data": {"b": "2"}})
    assert cm.data == {"greeting": "hello", "b": "2"}
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS, label_selector="suite=py").items] == ["py-cm"]

    apps.delete_namespaced_deployment("py-web", NS)
    core.delete_namespaced_config_map("py-cm", NS)
    for read, name in ((apps.read_namespaced_deployment, "py-web"), (core.read_namespaced_config_map, "py-cm")):
        with pytest.raises(ApiException) as caught:
            read(name, NS)
        assert caught.value.status == 404


def test_stale_resource_version_is_a_conflict(api_client: client.ApiClient, kubectl: Kubectl) -> None:
    core = client.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name="rv-cm", suite="rv")))
    cm.data = {"x": "1"}
    core.replace_namespaced_config_map("rv-cm", NS, cm)
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("rv-cm", NS, cm)  # still the old resourceVersion
    assert caught.value.status == 409
    body = json.loads(caught.value.body)
    assert (body["reason"], body["details"]["name"]) == ("Conflict", "rv-cm")
    assert "the object has been modified; please apply your changes to the latest version" in body["message"]

    stale = {**api_client.sanitize_for_serialization(cm), "data": {"y": "2"}}
    code, _, err = kubectl.run("replace", "-f", "-", stdin=json.dumps(stale))
    assert code == 1
    assert "(Conflict)" in err


def test_list_pagination_gives_every_object_once_at_one_revision(
    api_client: client.ApiClient, kubectl: Kubectl
) -> None:
    core = client.CoreV1Api(api_client)
    names = [f"page-{i:02d}" for i in range(7)]
    for name in names:
        core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name=name, suite="pages")))
    seen: list[str] = []
    revisions: set[str] = set()
    token: str | None = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(NS, label_selector="suite=pages", limit=3, _continue=token)
        pages += 1
        seen += [cm.metadata.name for cm in page.items]
        revisions.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        # Written after the first page: not in this list, whose pages all read the first page's revision.
        if pages == 1:
            core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name="page-late", suite="pages")))
    assert (seen, pages, len(revisions)) == (names, 3, 1)

    chunked = kubectl.ok("get", "configmaps", "-l", "suite=pages", "--chunk-size=2", "-o", "name")
    assert chunked.splitlines() == [f"configmap/{n}" for n in sorted([*names, "page-late"])]


def test_watch_from_a_list_resource_version(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    start = core.list_namespaced_config_map(NS, label_selector="suite=w").metadata.resource_version
    core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name="w-1", suite="w")))
    core.patch_namespaced_config_map("w-1", NS, {"data": {"b": "2"}})
    core.create_namespaced_config_map(NS, _yaml(CONFIGMAP.format(name="w-2", suite="w")))
    core.delete_namespaced_config_map("w-1", NS)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, NS, label_selector="suite=w", resource_version=start, timeout_seconds=2
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "w-1"), ("MODIFIED", "w-1"), ("ADDED", "w-2"), ("DELETED", "w-1")]


def test_kubectl_get_watch_sees_a_patch(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin=CONFIGMAP.format(name="kw", suite="kw"))
    cmd = [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir)]
    with subprocess.Popen(
        [*cmd, "get", "configmap", "kw", "-w", "-o", "custom-columns=NAME:.metadata.name,M:.data.m", "--no-headers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            lines = _line_reader(watcher)
            assert lines.get(timeout=30).split() == ["kw", "<none>"]
            kubectl.ok("patch", "configmap", "kw", "--type", "merge", "-p", '{"data":{"m":"1"}}')
            assert lines.get(timeout=30).split() == ["kw", "1"]
        finally:
            if watcher.poll() is None:
                watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=30)


def test_a_second_apiserver_reads_its_peers_writes_at_once(
    apiserver: RunningApiServer, etcd: TlsEtcd, tmp_path: Path, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    with running_apiserver(tmp_path / "peer", *etcd.store_args()) as peer:
        peer_kubectl = Kubectl(peer, tmp_path / "peer-cache")
        for i in range(5):
            peer_kubectl.ok("create", "-f", "-", stdin=CONFIGMAP.format(name=f"peer-{i}", suite="peer"))
            # A consistent read (no resourceVersion) through the other server: etcd's revision, from its cache.
            assert core.read_namespaced_config_map(f"peer-{i}", NS).metadata.name == f"peer-{i}"
            listed = core.list_namespaced_config_map(NS, label_selector="suite=peer")
            assert [cm.metadata.name for cm in listed.items] == [f"peer-{j}" for j in range(i + 1)]
        written = json.loads(peer_kubectl.ok("get", "configmap", "peer-4", "-o", "json"))
        rv = written["metadata"]["resourceVersion"]
        exact = core.list_namespaced_config_map(
            NS, label_selector="suite=peer", resource_version=rv, resource_version_match="NotOlderThan"
        )
        assert int(exact.metadata.resource_version) >= int(rv)
        assert len(exact.items) == 5


def test_objects_survive_an_apiserver_restart(etcd: TlsEtcd, tmp_path: Path) -> None:
    base = tmp_path / "restarted"
    with running_apiserver(base, *etcd.store_args()) as first:
        before = Kubectl(first, tmp_path / "cache1")
        before.ok("create", "-f", "-", stdin=DEPLOYMENT.format(name="rs-web"))
        before.ok("create", "-f", "-", stdin=CONFIGMAP.format(name="rs-cm", suite="restart"))
        written = {kind: get_json(before, kind, name)["metadata"] for kind, name in _RESTART_OBJECTS}
    with running_apiserver(base, *etcd.store_args()) as second:
        after = Kubectl(second, tmp_path / "cache2")
        for kind, name in _RESTART_OBJECTS:
            meta = get_json(after, kind, name)["metadata"]
            assert (meta["uid"], meta["resourceVersion"]) == (written[kind]["uid"], written[kind]["resourceVersion"])
        after.ok("delete", "deployment", "rs-web")
        after.ok("delete", "configmap", "rs-cm")


def test_secrets_are_ciphertext_in_etcd(etcd: TlsEtcd, tmp_path: Path) -> None:
    """With ``skiff up``'s default EncryptionConfiguration (aescbc), real etcdctl reads only ciphertext."""
    base = tmp_path / "encrypting"
    config = ensure_encryption_config(base / "data")
    plain = "etcd-sees-no-plaintext-6c0d"
    with running_apiserver(base, *etcd.store_args(), "--encryption-provider-config", str(config)) as server:
        kc = Kubectl(server, tmp_path / "cache")
        kc.ok("create", "secret", "generic", "at-rest", f"--from-literal=p={plain}")
        assert base64.b64decode(kc.ok("get", "secret", "at-rest", "-o", "jsonpath={.data.p}")).decode() == plain
        pki = etcd.pki
        etcdctl = [str(etcd_binary(ETCD_VERSION).etcdctl), "--endpoints", f"https://{etcd.endpoint}"]
        etcdctl += ["--cacert", str(pki.ca_cert), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
        env = {**os.environ, "ETCDCTL_API": "3"}
        keys = subprocess.run(
            [*etcdctl, "get", "--prefix", "/registry/", "--keys-only"], capture_output=True, env=env, timeout=60
        )
        assert keys.returncode == 0, keys.stderr
        (key,) = [k for k in keys.stdout.decode().split() if k.endswith(f"secrets/{NS}/at-rest")]
        raw = subprocess.run([*etcdctl, "get", key, "--print-value-only"], capture_output=True, env=env, timeout=60)
        assert raw.returncode == 0, raw.stderr
        assert raw.stdout.startswith(b"k8s:enc:aescbc:v1:key1:"), raw.stdout[:40]
        assert plain.encode() not in raw.stdout and base64.b64encode(plain.encode()) not in raw.stdout
        kc.ok("delete", "secret", "at-rest")


async def test_concurrent_progress_requests_keep_the_etcd_watch(etcd: TlsEtcd) -> None:
    pki = etcd.pki
    store = await EtcdStore.connect(
        [etcd.endpoint], ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key
    )
    watcher = await store.watch(b"/progress-test/", b"/progress-test0", progress_notify=True)
    try:
        for _ in range(3):
            await asyncio.gather(*(watcher.request_progress() for _ in range(20)))
        for _ in range(60):  # one answer per request, in order; the stream must not break
            async with asyncio.timeout(10):
                response = await anext(watcher)
            assert response.progress
    finally:
        await watcher.close()
        await store.close()


def test_concurrent_pod_creates_keep_every_watch_cache(
    api_client: client.ApiClient, apiserver: RunningApiServer
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "burst"}})

    def create(i: int) -> None:
        pod = {"metadata": {"name": f"burst-{i}"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        core.create_namespaced_pod("burst", pod)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(create, i) for i in range(32)]:
            done.result(timeout=60)
    assert len(core.list_namespaced_pod("burst").items) == 32
    # A broken store watch shows as a watch cache re-listing (it warns in the server's log).
    assert "re-listing" not in apiserver.log_err.read_text()


_RESTART_OBJECTS = (("deployment", "rs-web"), ("configmap", "rs-cm"))


def _yaml(text: str) -> Any:
    return yaml.safe_load(text)


def _line_reader(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """Lines of ``proc``'s stdout as they come, read by a daemon thread (so reads can time out)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--etcd-cafile", "{ca}"), id="https-without-client-certificate"),
        pytest.param((), id="plaintext-etcd-url"),
    ],
)
def test_no_start_without_a_client_certificate(etcd: TlsEtcd, tmp_path: Path, args: tuple[str, ...]) -> None:
    scheme = "https" if args else "etcd"
    store = ("--store", f"{scheme}://{etcd.endpoint}", *(a.format(ca=etcd.pki.ca_cert) for a in args))
    command = [sys.executable, "-m", "skiff.cli.main", "apiserver", "--data-dir", str(tmp_path), "--secure-port", "0"]
    done = subprocess.run([*command, *store], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    # A one-line reason, no traceback (grpc's own handshake log lines may come around it).
    assert "skiff apiserver: cannot start: " in done.stderr and "Traceback" not in done.stderr, done.stderr
