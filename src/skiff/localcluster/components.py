"""The component processes of a local cluster and their command lines, from one config.

Component flags are spelled once, here; each is the flag of that component's
own ``skiff <component>`` command, so what ``skiff up`` runs is exactly what a
user could run by hand to add a node or a second scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skiff.localcluster.addresses import ClusterAddresses
from skiff.localcluster.supervisor import Component, Supervisor

CONTROL_PLANE_LABELS = "node-role.kubernetes.io/control-plane=,node-role.kubernetes.io/master=true"
#: Stop order: traffic first, then the node (which stops its pods), then the control loops.
STOP_ORDER = ("proxy", "etcd-operator", "kubelet", "scheduler", "controller-manager")


@dataclass(frozen=True)
class LocalCluster:
    data_dir: Path
    kubeconfig: Path
    node_name: str
    addresses: ClusterAddresses
    with_kubelet: bool = True
    with_proxy: bool = True
    with_etcd_operator: bool = True


def components(cluster: LocalCluster) -> list[Component]:
    kc = str(cluster.kubeconfig)
    a = cluster.addresses
    out = [
        Component(
            "controller-manager",
            Supervisor.skiff_argv(
                "controller-manager",
                "--kubeconfig",
                kc,
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
        Component("scheduler", Supervisor.skiff_argv("scheduler", "--kubeconfig", kc)),
    ]
    if cluster.with_kubelet:
        out.append(
            Component(
                "kubelet",
                Supervisor.skiff_argv(
                    "kubelet",
                    "--kubeconfig",
                    kc,
                    "--node-name",
                    cluster.node_name,
                    "--node-ip",
                    a.node_ip,
                    "--labels",
                    CONTROL_PLANE_LABELS,
                    "--root-dir",
                    str(cluster.data_dir / "kubelet"),
                    "--cluster-dns",
                    a.cluster_dns,
                    "--stop-pods-on-exit",
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
                    kc,
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
                    kc,
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
