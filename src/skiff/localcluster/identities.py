"""Who each component of a local cluster is to the API server: its own client certificate and kubeconfig.

As kubeadm's kubeconfig phase (controller-manager.conf, scheduler.conf,
kubelet.conf) and its kube-proxy identity: every component ``skiff up``
starts authenticates as itself, never as the admin (``system:masters``), so
the RBAC bootstrap policy (and the Node authorizer for the kubelet) grants it
exactly its role:

=================== =============================== ================= ==================================
component           user (CN)                       groups (O)        authorised by
=================== =============================== ================= ==================================
controller-manager  system:kube-controller-manager                    system:kube-controller-manager
scheduler           system:kube-scheduler                             system:kube-scheduler,
                                                                      system:volume-scheduler
kubelet             system:node:<node name>         system:nodes      the Node authorizer
proxy               system:kube-proxy                                 system:node-proxier,
                                                                      system:skiff:proxy
etcd-operator       system:skiff-etcd-operator                        system:skiff:etcd-operator
=================== =============================== ================= ==================================

(``system:skiff:*`` roles: ``skiff.apiserver.rbac_policy/skiff-roles.yaml``.)
Certificates live in ``DATA_DIR/pki/<component>.crt``/``.key``, issued by the
cluster CA on first start and again when due or when the subject changed (a
new ``--node-name``), as the other leaf certs; each kubeconfig,
``DATA_DIR/<component>.kubeconfig`` (0600), is written at every start because
it names the API server's current URL.

Blocking (file I/O, key generation): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import Pki, ensure_client_cert

NODES_GROUP = "system:nodes"
ETCD_OPERATOR_USER = "system:skiff-etcd-operator"


@dataclass(frozen=True)
class Identity:
    component: str
    user: str
    groups: tuple[str, ...] = ()


def identities(node_name: str) -> list[Identity]:
    return [
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kubelet", f"system:node:{node_name}", (NODES_GROUP,)),
        Identity("proxy", "system:kube-proxy"),
        Identity("etcd-operator", ETCD_OPERATOR_USER),
    ]


def kubeconfig_path(data_dir: Path, component: str) -> Path:
    return data_dir / f"{component}.kubeconfig"


def write_kubeconfigs(data_dir: Path, server: str, pki: Pki, node_name: str) -> dict[str, Path]:
    """Each component's kubeconfig for ``server``, its certificate (re)issued when needed; by component."""
    written: dict[str, Path] = {}
    for identity in identities(node_name):
        cert, key = ensure_client_cert(pki, pki.directory / identity.component, identity.user, identity.groups)
        path = kubeconfig_path(data_dir, identity.component)
        config = kubeconfig.build(server, pki, client_cert=cert, client_key=key)
        kubeconfig.write(path, config, merge_existing=False)
        written[identity.component] = path
    return written
