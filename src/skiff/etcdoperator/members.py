"""The objects an EtcdCluster is made of: member pods, their PVCs, two Services and a PDB.

Pure builders (no I/O; only ``new_member_name`` draws randomness), so the
cluster controller decides *when* and these decide *what*.  The model follows
coreos/etcd-operator's pkg/util/k8sutil (labels ``app=etcd``,
``etcd_cluster``, ``etcd_node``, annotation ``etcd.version``, hostname and
subdomain, an owner reference with controller=true, the ``etcd-data``
volume, ``--initial-cluster-token`` only for a new cluster) with Skiff's
deliberate differences:

* peer URLs are stable DNS names, ``<member>.<cluster>.<ns>.svc<domain>``
  (the headless Service publishes unready pods too, and a pod's own name is in
  its /etc/hosts), so a member recreated on a new pod IP is the same member;
  etcd listens on the pod IP, and client URLs are pod IPs because the
  operator, which dials them, runs outside the pods.
* ``restartPolicy: Always`` and the data on a PVC named after the member: a
  crashed etcd restarts in place with its data (the original replaced it).
* readiness is ``GET /health`` and there is no liveness probe: a slow member is
  never killed (the original's exec liveness probe killed busy members).
* a joining member's pod is created only after the operator's MemberAdd (as
  a learner) of its peer URL, so etcd never starts before it is a member.
* a member rebuilt from a snapshot gets ``fetch-snapshot`` (download) and
  ``restore-datadir`` (``etcdutl``/``etcdctl snapshot restore``) init
  containers; both are no-ops once the data dir exists, so a restarted pod
  keeps what it has.
* with ``spec.TLS.static`` (:mod:`skiff.etcdoperator.tls`) the peer and/or
  client URLs are https, the member secrets are mounted where upstream mounts
  them, etcd gets the TLS flags, and readiness is read from the plain
  metrics port (the kubelet has no client certificate).

Every builder returns a fresh dict; inputs (the EtcdCluster) are never mutated.
"""

from __future__ import annotations

import copy
import secrets
import shlex
import string
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from skiff.etcdoperator import tls as tls_mod
from skiff.etcdoperator.resources import API_VERSION
from skiff.etcdoperator.versions import desired_repository, image_for, normalize

LABEL_APP = "app"
APP = "etcd"
LABEL_CLUSTER = "etcd_cluster"
LABEL_NODE = "etcd_node"
ANNOTATION_VERSION = "etcd.version"
CLIENT_PORT = 2379
PEER_PORT = 2380
VOLUME_NAME = "etcd-data"
VOLUME_MOUNT = "/var/etcd"
DATA_DIR = "/var/etcd/data"
RESTORE_FILE = "/var/etcd/restore.db"
SNAPSHOT_IMAGE = "python:3"
DEFAULT_PVC_SPEC: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
MEMBER_SUFFIX_LENGTH = 10
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
#: The pod's own IP, as Kubernetes expands it in command and env ($(VAR), from the downward API).
POD_IP_REF = "$(POD_IP)"
POD_IP_ENV: dict[str, Any] = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}

# Downloads argv[1] to argv[2] unless the data dir argv[3] already exists, verifying an https server
# against the CA PEM argv[4] when given.  urlopen raises on any HTTP error status or a certificate
# that does not verify, so a failed download is a non-zero exit (the init container is retried).
FETCH_SNAPSHOT_SCRIPT = """\
import os, shutil, ssl, sys, urllib.request
url, dest, data_dir = sys.argv[1:4]
context = ssl.create_default_context(cadata=sys.argv[4]) if len(sys.argv) > 4 else None
if os.path.isdir(data_dir):
    sys.exit(0)
with urllib.request.urlopen(url, timeout=120, context=context) as response, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(response, out)
os.replace(dest + ".part", dest)
"""

#: Cluster domain of member DNS names unless spec.pod.ClusterDomain says otherwise.
DEFAULT_CLUSTER_DOMAIN = ".cluster.local"


def new_member_name(cluster: str) -> str:
    """``<cluster>-<10 random [a-z0-9]>``: never reuses a recently deleted member's name (#1825)."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(MEMBER_SUFFIX_LENGTH))
    return f"{cluster}-{suffix}"


def peer_url(cluster: Mapping[str, Any], member: str) -> str:
    """The member's stable peer URL: its DNS name under the cluster's headless Service."""
    domain = str(_pod_policy(cluster).get("ClusterDomain") or DEFAULT_CLUSTER_DOMAIN)
    if domain and not domain.startswith("."):
        domain = "." + domain
    namespace = cluster["metadata"].get("namespace") or "default"
    scheme = _scheme(tls_mod.static_tls(_spec(cluster)).secure_peer)
    return f"{scheme}://{member}.{cluster['metadata']['name']}.{namespace}.svc{domain}:{PEER_PORT}"


def _scheme(secure: bool) -> str:
    return "https" if secure else "http"


def listen_peer_url(ip: str, secure: bool = False) -> str:
    return f"{_scheme(secure)}://{ip}:{PEER_PORT}"


def client_url(ip: str, secure: bool = False) -> str:
    return f"{_scheme(secure)}://{ip}:{CLIENT_PORT}"


def selector(cluster_name: str) -> dict[str, str]:
    """The labels every member of the cluster carries (Services, PDB and listers select on these)."""
    return {LABEL_APP: APP, LABEL_CLUSTER: cluster_name}


def owner_reference(cluster: Mapping[str, Any]) -> dict[str, Any]:
    meta = cluster["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "EtcdCluster",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _spec(cluster: Mapping[str, Any]) -> dict[str, Any]:
    spec = cluster.get("spec")
    return spec if isinstance(spec, dict) else {}


def _pod_policy(cluster: Mapping[str, Any]) -> dict[str, Any]:
    pod = _spec(cluster).get("pod")
    return pod if isinstance(pod, dict) else {}


def _metadata(cluster: Mapping[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels, "ownerReferences": [owner_reference(cluster)]}
    namespace = cluster["metadata"].get("namespace")
    if namespace:
        meta["namespace"] = namespace
    return meta


def member_labels(cluster: Mapping[str, Any], member: str) -> dict[str, str]:
    """spec.pod.labels, then the operator's own (which win: they are reserved)."""
    labels = {str(k): str(v) for k, v in (_pod_policy(cluster).get("labels") or {}).items()}
    labels.update(selector(cluster["metadata"]["name"]))
    labels[LABEL_NODE] = member
    return labels


def initial_cluster(member: str, peers: Sequence[tuple[str, str]], self_peer_url: str) -> str:
    """``--initial-cluster``: the other members as given, then this one."""
    entries = [f"{name}={url}" for name, url in peers if name != member]
    entries.append(f"{member}={self_peer_url}")
    return ",".join(entries)


def etcd_command(
    member: str,
    *,
    state: Literal["new", "existing"],
    peers: Sequence[tuple[str, str]],
    token: str | None,
    self_peer_url: str,
    tls: tls_mod.StaticTls = tls_mod.PLAINTEXT,
) -> list[str]:
    command = [
        "etcd",
        f"--name={member}",
        f"--data-dir={DATA_DIR}",
        f"--listen-peer-urls={listen_peer_url(POD_IP_REF, tls.secure_peer)}",
        f"--listen-client-urls={client_url(POD_IP_REF, tls.secure_client)}",
        f"--advertise-client-urls={client_url(POD_IP_REF, tls.secure_client)}",
        f"--initial-advertise-peer-urls={self_peer_url}",
        f"--initial-cluster={initial_cluster(member, peers, self_peer_url)}",
        f"--initial-cluster-state={state}",
    ]
    if state == "new" and token:
        command.append(f"--initial-cluster-token={token}")  # only a new cluster has a token (k8sutil)
    if tls.secure_client:
        command.append(f"--listen-metrics-urls=http://{POD_IP_REF}:{tls_mod.METRICS_PORT}")
    return command + tls_mod.member_flags(tls)


def restore_script(
    member: str,
    token: str,
    *,
    self_peer_url: str,
    data_dir: str = DATA_DIR,
    snapshot: str = RESTORE_FILE,
) -> str:
    """Restore ``snapshot`` into ``data_dir`` once; a half-done restore never looks like a data dir.

    etcd 3.5 moved ``snapshot restore`` to etcdutl (etcdctl's is deprecated); 3.4 images only have etcdctl.
    The script reads the pod IP from the shell (``$POD_IP``), never through the kubelet's ``$(POD_IP)``.
    """
    url = self_peer_url.replace(POD_IP_REF, "$POD_IP")
    staging = f"{data_dir}.restoring"
    return "\n".join(
        [
            "set -e",
            f'if [ -d {data_dir} ]; then echo "{data_dir} exists; keeping it"; exit 0; fi',
            "if command -v etcdutl >/dev/null 2>&1; then TOOL=etcdutl; else TOOL=etcdctl; export ETCDCTL_API=3; fi",
            f"rm -rf {staging}",
            f"$TOOL snapshot restore {snapshot} --name {shlex.quote(member)}"
            f" --initial-cluster {shlex.quote(member)}={url}"
            f" --initial-cluster-token {shlex.quote(token)}"
            f" --initial-advertise-peer-urls {url}"
            f" --data-dir {staging}",
            f"mv {staging} {data_dir}",
            f"rm -f {snapshot}",
        ]
    )


def _affinity(cluster: Mapping[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
    """spec.pod.affinity, or the deprecated ``antiAffinity: true`` as the original converts it (SetDefaults)."""
    if pod.get("affinity"):
        return copy.deepcopy(dict(pod["affinity"]))
    if pod.get("antiAffinity"):
        term = {
            "labelSelector": {"matchLabels": {LABEL_CLUSTER: cluster["metadata"]["name"]}},
            "topologyKey": "kubernetes.io/hostname",
        }
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return None


def _with_resources(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    if pod.get("resources"):
        container["resources"] = copy.deepcopy(pod["resources"])
    return container


def _volume_mounts() -> list[dict[str, Any]]:
    return [{"name": VOLUME_NAME, "mountPath": VOLUME_MOUNT}]


def _init_containers(
    member: str,
    image: str,
    pod: dict[str, Any],
    *,
    snapshot_url: str | None,
    snapshot_ca: str | None,
    token: str | None,
    self_peer_url: str,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if snapshot_url is not None:
        if not token:
            raise ValueError("a member restored from a snapshot needs the cluster token")
        fetch = ["python3", "-c", FETCH_SNAPSHOT_SCRIPT, snapshot_url, RESTORE_FILE, DATA_DIR]
        if snapshot_ca:
            fetch.append(snapshot_ca)
        out.append({"name": "fetch-snapshot", "image": SNAPSHOT_IMAGE, "command": fetch})
        out.append(
            {
                "name": "restore-datadir",
                "image": image,
                "command": ["sh", "-c", restore_script(member, token, self_peer_url=self_peer_url)],
                "env": [copy.deepcopy(POD_IP_ENV)],
            }
        )
    for container in out:
        container["volumeMounts"] = _volume_mounts()
        _with_resources(container, pod)
    return out


def member_pod(
    cluster: Mapping[str, Any],
    member: str,
    *,
    version: str,
    state: Literal["new", "existing"],
    peers: Sequence[tuple[str, str]],
    token: str | None = None,
    snapshot_url: str | None = None,
    snapshot_ca: str | None = None,
    labels_override: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The pod of ``member`` running etcd ``version``.

    ``peers`` are the *other* members as (name, peer URL); this member is appended at its
    own ``peer_url``.  With ``state="existing"`` the operator has already added it (MemberAdd).
    ``snapshot_url`` (state "new" only, needs ``token``) adds ``fetch-snapshot`` and
    ``restore-datadir``; ``snapshot_ca`` is the PEM the fetch verifies an https server with.
    ``labels_override`` adds or replaces labels; a None value removes one (e.g. a restored seed
    kept out of the client Service until it takes over).
    """
    if snapshot_url is not None and state != "new":
        raise ValueError("a member restored from a snapshot starts a new cluster (state 'new')")
    self_peer_url = peer_url(cluster, member)
    version = normalize(version)
    pod_policy = _pod_policy(cluster)
    image = image_for(desired_repository(_spec(cluster)), version)
    cluster_name = cluster["metadata"]["name"]
    tls = tls_mod.static_tls(_spec(cluster))
    command = etcd_command(member, state=state, peers=peers, token=token, self_peer_url=self_peer_url, tls=tls)
    tls_volumes, tls_mounts = tls_mod.member_volumes(tls)
    etcd = _etcd_container(image, pod_policy, command, tls)
    etcd["volumeMounts"] += tls_mounts
    spec: dict[str, Any] = {
        "hostname": member,
        "subdomain": cluster_name,
        "restartPolicy": "Always",
        "automountServiceAccountToken": False,
        "containers": [etcd],
        "volumes": [{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": member}}, *tls_volumes],
    }
    init = _init_containers(
        member,
        image,
        pod_policy,
        snapshot_url=snapshot_url,
        snapshot_ca=snapshot_ca,
        token=token,
        self_peer_url=self_peer_url,
    )
    if init:
        spec["initContainers"] = init
    spec.update(_scheduling(cluster, pod_policy))
    meta = _pod_metadata(cluster, member, version, labels_override)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _pod_metadata(
    cluster: Mapping[str, Any], member: str, version: str, labels_override: Mapping[str, str | None] | None
) -> dict[str, Any]:
    labels = member_labels(cluster, member)
    for key, value in (labels_override or {}).items():
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    meta = _metadata(cluster, member, labels)
    annotations = {str(k): str(v) for k, v in (_pod_policy(cluster).get("annotations") or {}).items()}
    annotations[ANNOTATION_VERSION] = version
    meta["annotations"] = annotations
    return meta


def _etcd_container(
    image: str, pod_policy: dict[str, Any], command: list[str], tls: tls_mod.StaticTls
) -> dict[str, Any]:
    env = [copy.deepcopy(POD_IP_ENV), *copy.deepcopy(list(pod_policy.get("etcdEnv") or []))]
    ports = [
        {"name": "client", "containerPort": CLIENT_PORT, "protocol": "TCP"},
        {"name": "peer", "containerPort": PEER_PORT, "protocol": "TCP"},
    ]
    health_port = CLIENT_PORT
    if tls.secure_client:  # the kubelet has no client certificate: /health from the plain metrics listener
        health_port = tls_mod.METRICS_PORT
        ports.append({"name": "metrics", "containerPort": health_port, "protocol": "TCP"})
    etcd = {
        "name": "etcd",
        "image": image,
        "command": command,
        "env": env,
        "ports": ports,
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": health_port, "scheme": "HTTP"},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "volumeMounts": _volume_mounts(),
    }
    return _with_resources(etcd, pod_policy)


def _scheduling(cluster: Mapping[str, Any], pod_policy: dict[str, Any]) -> dict[str, Any]:
    """nodeSelector, affinity, tolerations and securityContext from spec.pod (copies)."""
    out: dict[str, Any] = {}
    if pod_policy.get("nodeSelector"):
        out["nodeSelector"] = dict(pod_policy["nodeSelector"])
    affinity = _affinity(cluster, pod_policy)
    if affinity:
        out["affinity"] = affinity
    if pod_policy.get("tolerations"):
        out["tolerations"] = copy.deepcopy(list(pod_policy["tolerations"]))
    if pod_policy.get("securityContext"):
        out["securityContext"] = copy.deepcopy(dict(pod_policy["securityContext"]))
    return out


def member_pvc(cluster: Mapping[str, Any], member: str) -> dict[str, Any]:
    """The member's data volume claim, named like the member; its loss means the member's data is gone."""
    claim = _pod_policy(cluster).get("persistentVolumeClaimSpec")
    spec = copy.deepcopy(dict(claim)) if isinstance(claim, dict) and claim else copy.deepcopy(DEFAULT_PVC_SPEC)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(cluster, member, member_labels(cluster, member)),
        "spec": spec,
    }


def _port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}


def peer_service(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """Headless ``<cluster>``: publishes unready members too (the original's tolerate-unready-endpoints)."""
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cluster, name, selector(name)),
        "spec": {
            "clusterIP": "None",
            "ports": [_port("client", CLIENT_PORT), _port("peer", PEER_PORT)],
            "selector": selector(name),
            "publishNotReadyAddresses": True,
        },
    }


def client_service(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """``<cluster>-client``: ready members only (upstream #2063)."""
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cluster, f"{name}-client", selector(name)),
        "spec": {"type": "ClusterIP", "ports": [_port("client", CLIENT_PORT)], "selector": selector(name)},
    }


def disruption_budget(cluster: Mapping[str, Any], size: int) -> dict[str, Any]:
    """PDB ``<cluster>``: voluntary evictions may never take the cluster below quorum (size//2+1)."""
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(cluster, name, selector(name)),
        "spec": {"minAvailable": size // 2 + 1, "selector": {"matchLabels": selector(name)}},
    }
