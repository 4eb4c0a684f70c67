"""Micro-benchmark: the API server's per-request field validation and pruning (``SchemaFieldChecker``).

Run from the repository root::

    .venv/bin/python bench/validation_bench.py            # ~20 s
    .venv/bin/python bench/validation_bench.py --seconds 0.5

Times ``SchemaFieldChecker.unknown_fields`` (type check + unknown-field pruning)
over the bodies a density run sends most: a Pod a ReplicaSet creates from its
Deployment's template, a kubelet's pod status patch *result* (the whole stored
Pod, managedFields included), a Node status update, a Lease renewal; plus the
same Pod with an unknown field (the Warn path, which prunes) and
``CheckedPatch.__call__`` with an identity mutate.  Prints microseconds per call
(best of ``--repeat`` rounds).  Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

from skiff.apiserver import bodies
from skiff.apiserver.field_validation import CheckedPatch, SchemaFieldChecker
from skiff.apiserver.negotiation import STRATEGIC_MERGE_PATCH
from skiff.kubelet.hollow import HollowNodes
from skiff.registry.builtin import find
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import builtin_schemas

NOW = "2024-05-01T10:00:00Z"
UID = "5f0e8c43-2d0c-4a55-9c3e-0d3c6f1e0a11"
RS_UID = "0b4a52d1-8d2e-4bcb-b3a1-6f0fd7a0c2e7"
LABELS = {"app": "small-deployment-3", "density": "true", "pod-template-hash": "7c9d8b6f5"}


def _info(group: str, version: str, plural: str) -> ResourceInfo:
    info = find(group, version, plural)
    assert info is not None, plural
    return info


def _managed(manager: str, operation: str, fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": NOW,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def created_pod() -> dict[str, Any]:
    """What the ReplicaSet controller POSTs: the (defaulted) template, generateName, the controller reference."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "small-deployment-3-7c9d8b6f5-",
            "namespace": "density-1",
            "labels": dict(LABELS),
            "annotations": {"density/generation": "1"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "small-deployment-3-7c9d8b6f5",
                    "uid": RS_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.9",
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def patched_pod() -> dict[str, Any]:
    """A kubelet status patch's result: the whole bound, running Pod as stored."""
    pod = created_pod()
    meta = pod["metadata"]
    meta.update(
        {
            "name": "small-deployment-3-7c9d8b6f5-x2k9q",
            "uid": UID,
            "resourceVersion": "123456",
            "creationTimestamp": NOW,
            "managedFields": [
                _managed(
                    "kube-controller-manager",
                    "Update",
                    {
                        "f:metadata": {
                            "f:generateName": {},
                            "f:labels": {".": {}, "f:app": {}, "f:density": {}, "f:pod-template-hash": {}},
                            "f:ownerReferences": {".": {}, f'k:{{"uid":"{RS_UID}"}}': {}},
                        },
                        "f:spec": {
                            "f:containers": {'k:{"name":"pause"}': {".": {}, "f:image": {}, "f:name": {}}},
                            "f:dnsPolicy": {},
                            "f:restartPolicy": {},
                        },
                    },
                ),
                _managed(
                    "kubelet",
                    "Update",
                    {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}, "f:podIP": {}}},
                    "status",
                ),
            ],
        }
    )
    spec = pod["spec"]
    spec.update(
        {
            "nodeName": "hollow-17",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        }
    )
    pod["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": NOW}
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": "10.64.0.18",
        "hostIPs": [{"ip": "10.64.0.18"}],
        "podIP": "10.128.4.7",
        "podIPs": [{"ip": "10.128.4.7"}],
        "startTime": NOW,
        "qosClass": "Burstable",
        "containerStatuses": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.9",
                "imageID": "",
                "containerID": f"hollow://{UID}/pause",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": NOW}},
                "lastState": {},
            }
        ],
    }
    return pod


def node_status() -> dict[str, Any]:
    """A hollow kubelet's Node status update (the whole Node, as skiff.kubelet.hollow builds it)."""
    node: dict[str, Any] = HollowNodes(None, 18).node_body("hollow-17")  # type: ignore[arg-type]
    node["metadata"].update(uid=UID, resourceVersion="98765", creationTimestamp=NOW)
    node["metadata"]["managedFields"] = [
        _managed(
            "hollow-kubelet",
            "Update",
            {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/hostname": {}}}, "f:status": {}},
        )
    ]
    return node


def lease_update() -> dict[str, Any]:
    """A node Lease renewal (PUT of the whole Lease)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "hollow-17",
            "namespace": "kube-node-lease",
            "uid": UID,
            "resourceVersion": "99999",
            "creationTimestamp": NOW,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "hollow-17", "uid": RS_UID}],
        },
        "spec": {"holderIdentity": "hollow-17", "leaseDurationSeconds": 40, "renewTime": "2024-05-01T10:00:10.123456Z"},
    }


def with_unknown_field() -> dict[str, Any]:
    pod = created_pod()
    pod["spec"]["containers"][0]["imagee"] = "typo"
    return pod


def best_us(call: Callable[[], object], seconds: float, repeat: int) -> float:
    """Best-of-``repeat`` microseconds per ``call()``; each round runs about ``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            call()
        if time.perf_counter() - start >= 0.05:
            break
        n *= 2
    per_round = max(1, int(n * seconds / max(time.perf_counter() - start, 1e-9)))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(per_round):
            call()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best * 1e6


def pruning_us(
    checker: SchemaFieldChecker, info: ResourceInfo, body: dict[str, Any], seconds: float, repeat: int
) -> float:
    """Per call on a fresh copy each time (pruning mutates); copies are made before the clock starts."""
    count = max(200, int(2000 * seconds))
    best = float("inf")
    for _ in range(repeat):
        copies = [copy.deepcopy(body) for _ in range(count)]
        start = time.perf_counter()
        for obj in copies:
            checker.unknown_fields(info, obj)
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timing round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case (the best is printed)")
    args = parser.parse_args()

    checker = SchemaFieldChecker(builtin_schemas())
    pods = _info("", "v1", "pods")
    cases: list[tuple[str, ResourceInfo, dict[str, Any]]] = [
        ("pod create (ReplicaSet)", pods, created_pod()),
        ("pod status patch result", pods, patched_pod()),
        ("node status update", _info("", "v1", "nodes"), node_status()),
        ("lease renewal", _info("coordination.k8s.io", "v1", "leases"), lease_update()),
    ]
    print(f"{'case':<34} {'us/call':>9}")
    total = 0.0
    for label, info, body in cases:
        assert checker.unknown_fields(info, body) == [], label  # clean: the checker leaves it unchanged
        us = best_us(lambda info=info, body=body: checker.unknown_fields(info, body), args.seconds, args.repeat)
        total += us
        print(f"{label:<34} {us:9.2f}")
    print(f"{'sum of the four':<34} {total:9.2f}")

    us = pruning_us(checker, pods, with_unknown_field(), args.seconds, args.repeat)
    print(f"{'pod create with an unknown field':<34} {us:9.2f}")

    result = patched_pod()
    patch = CheckedPatch(lambda current: result, checker, pods, bodies.WARN, STRATEGIC_MERGE_PATCH)
    us = best_us(lambda: patch(None), args.seconds, args.repeat)
    print(f"{'CheckedPatch (status patch)':<34} {us:9.2f}")


if __name__ == "__main__":
    main()
