"""The component processes of a local cluster and their command lines, from one config.

Component flags are spelled once, here; each is the flag of that component's
own ``skiff <component>`` command, so what ``skiff up`` runs is exactly what a
user could run by hand to add a node or a second scheduler.  Each runs with
its own identity (``DATA_DIR/<component>.kubeconfig``, skiff.localcluster.identities)
and the controller-manager's controllers as their ServiceAccounts
(``--use-service-account-credentials``, on as kubeadm sets it).  The kubelet
registers its Node without the control-plane labels, which NodeRestriction
would refuse it: ``skiff up`` adds them as the admin (``mark_control_plane``,
kubeadm's mark-control-plane phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skiff.localcluster.addresses import ClusterAddresses
from skiff.localcluster.identities import kubeconfig_path
from skiff.localcluster.supervisor import Component, Supervisor

CONTROL_PLANE_LABELS = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true"}
#: Stop order: traffic first, then the node (which stops its pods), then the control loops.
STOP_ORDER = ("proxy", "etcd-operator", "kubelet", "scheduler", "controller-manager")


@dataclass(frozen=True)
class LocalCluster:
    data_dir: Path
    node_name: str
    addresses: ClusterAddresses
    with_kubelet: bool = True
    with_proxy: bool = True
    with_etcd_operator: bool = True


def kubelet_serving_prefix(data_dir: Path) -> Path:
    """Where ``skiff up`` keeps its kubelet's serving certificate (``.crt``/``.key``, from the cluster CA)."""
    return data_dir / "pki" / "kubelet-serving"


def components(cluster: LocalCluster) -> list[Component]:
    def kc(component: str) -> str:
        return str(kubeconfig_path(cluster.data_dir, component))

    a = cluster.addresses
    out = [
        Component(
            "controller-manager",
            Supervisor.skiff_argv(
                "controller-manager",
                "--kubeconfig",
                kc("controller-manager"),
                "--use-service-account-credentials",
                "--cluster-cidr",
                a.cluster_cidr,
                "--root-ca-file",
                str(cluster.data_dir / "pki" / "ca.crt"),
                # The cluster CA signs kubelet client certificates (TLS bootstrapping of joining nodes).
                "--cluster-signing-cert-file",
                str(cluster.data_dir / "pki" / "ca.crt"),
                "--cluster-signing-key-file",
                str(cluster.data_dir / "pki" / "ca.key"),
                "--local-volume-dir",
                str(cluster.data_dir / "volumes"),
            ),
        ),
        Component("scheduler", Supervisor.skiff_argv("scheduler", "--kubeconfig", kc("scheduler"))),
    ]
    if cluster.with_kubelet:
        out.append(
            Component(
                "kubelet",
                Supervisor.skiff_argv(
                    "kubelet",
                    "--kubeconfig",
                    kc("kubelet"),
                    "--node-name",
                    cluster.node_name,
                    "--node-ip",
                    a.node_ip,
                    "--root-dir",
                    str(cluster.data_dir / "kubelet"),
                    "--cluster-dns",
                    a.cluster_dns,
                    "--stop-pods-on-exit",
                    # Its API as kubeadm sets it up: clients of the cluster CA, a serving cert from it.
                    "--client-ca-file",
                    str(cluster.data_dir / "pki" / "ca.crt"),
                    "--tls-cert-file",
                    str(kubelet_serving_prefix(cluster.data_dir).with_suffix(".crt")),
                    "--tls-private-key-file",
                    str(kubelet_serving_prefix(cluster.data_dir).with_suffix(".key")),
                ),
                grace_s=60.0,
            )
        )
    if cluster.with_proxy:
        out.append(
            Component(
                "proxy",
                Supervisor.skiff_argv(
                    "proxy",
                    "--kubeconfig",
                    kc("proxy"),
                    "--node-name",
                    cluster.node_name,
                    # No --node-ip: the proxy then serves NodePorts on every node of this machine.
                    "--cluster-dns",
                    a.cluster_dns,
                    "--load-balancer-range",
                    a.load_balancer_cidr,
                    "--healthz-bind-address",
                    a.node_ip,
                ),
            )
        )
    if cluster.with_etcd_operator:
        state = cluster.data_dir / "etcd-operator"
        out.append(
            Component(
                "etcd-operator",
                Supervisor.skiff_argv(
                    "etcd-operator",
                    "--kubeconfig",
                    kc("etcd-operator"),
                    "--state-dir",
                    str(state),
                    "--backup-dir",
                    str(state / "backups"),
                    # Restoring seeds fetch snapshots from here: the node's address, reachable from every pod.
                    "--listen-address",
                    a.node_ip,
                ),
            )
        )
    return out
