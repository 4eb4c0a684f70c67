"""The cost of ``metadata.managedFields`` tracking: ``record_write`` per realistic write, in microseconds.

Run from the repository root::

    python bench/managed_fields_bench.py                  # 500 objects per case, best of 5 rounds
    python bench/managed_fields_bench.py --quick          # 200 objects per case, best of 3
    python bench/managed_fields_bench.py --against HEAD   # and the code of a git revision, side by side

Times ``skiff.registry.managed_fields.record_write`` in-process for the writes
a density run is made of: a pod created by the replicaset controller, its
binding (spec.nodeName, by the scheduler), the kubelet's status patch
Pending→Running (conditions, containerStatuses), a Deployment status update,
a Lease renewTime update and a Node status patch (heartbeats).  Each write is
to an object of its own (names, uids, IPs differ, so FieldsV1 differs where it
does in a cluster: pods of one ReplicaSet share their creator's entry, every
pod has its own podIPs key); pods are new every round, Deployments, Leases and
Nodes are written again round after round.  Each object goes through the
registry's own steps first (type meta, create metadata, the strategy's prepare
and defaults; the stored object round-trips through JSON, as the registry
decodes it) so ``old`` carries the managedFields earlier writes left.  Only
``record_write`` is timed, in CPU time of the process (``time.process_time``:
a busy machine slows the figures less than wall time would), with the batch
frozen out of the collector's way.  ``--against REV`` loads
``managed_fields.py`` and ``field_sets.py`` as they are at a git revision (the
rest of the tree as it is) and times both, rounds interleaved, with the
ratio.  Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from skiff.registry import managed_fields
from skiff.registry.builtin import BUILTIN
from skiff.registry.managed_fields import UPDATE, WriteManager, managing, record_write
from skiff.registry.metadata import (
    carry_update_metadata,
    ensure_namespace,
    fill_create_metadata,
    format_time,
    set_type_meta,
)
from skiff.registry.resource import Obj, ResourceInfo

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

RS_CONTROLLER = WriteManager("kube-controller-manager", UPDATE)
DEPLOYMENT_CONTROLLER = WriteManager("kube-controller-manager", UPDATE, "status")
SCHEDULER = WriteManager("kube-scheduler", UPDATE, "binding")
KUBELET_STATUS = WriteManager("kubelet", UPDATE, "status")
KUBELET = WriteManager("kubelet", UPDATE)


def info_of(kind: str) -> ResourceInfo:
    return next(i for i in BUILTIN if i.kind == kind)


POD, DEPLOYMENT, LEASE, NODE = info_of("Pod"), info_of("Deployment"), info_of("Lease"), info_of("Node")


def stored(obj: Obj) -> Obj:
    """What the registry reads back: a JSON round trip (as ``metadata.decode``)."""
    out: Obj = orjson.loads(orjson.dumps(obj))
    return out


# -- the registry's steps around record_write --------------------------------------------------------
def uid(kind: int, n: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


def prepare_create(info: ResourceInfo, body: Obj, now: datetime, object_uid: str) -> Obj:
    new = copy.deepcopy(body)
    set_type_meta(new, info)
    fill_create_metadata(new, info, now, object_uid, lambda: object_uid[-5:])
    ensure_namespace(new, info, (body.get("metadata") or {}).get("namespace"))
    info.strategy.prepare_for_create(new)
    info.strategy.default(new)
    return new


def prepare_update(info: ResourceInfo, old: Obj, mutate: Callable[[Obj], None], subresource: str) -> Obj:
    new = stored(old)
    mutate(new)
    carry_update_metadata(new, old)
    if subresource == "status":
        info.strategy.prepare_for_status_update(new, old)
    elif subresource != "binding":
        info.strategy.prepare_for_update(new, old)
    info.strategy.default(new)
    return new


def write(info: ResourceInfo, who: WriteManager, old: Obj | None, new: Obj, now: datetime) -> Obj:
    with managing(who):
        record_write(info, old, new, now)
    return stored(new)


# -- the objects ---------------------------------------------------------------------------------------
#: ReplicaSets the pods belong to (their uid is in the pods' ownerReferences, so in the FieldsV1).
REPLICASETS = 10


def pod_body(n: int) -> Obj:
    rs = n % REPLICASETS
    labels = {"app": f"density-0-{rs}", "skiff.dev/density": "true", "pod-template-hash": f"5d8f7c9b{rs}"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"density-0-{rs}-5d8f7c9b{rs}-",
            "namespace": "density-0",
            "labels": labels,
            "annotations": {"skiff.dev/generation": "1"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"density-0-{rs}-5d8f7c9b{rs}",
                    "uid": uid(0x0F0E0D0C, rs),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.9",
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
                }
            ],
        },
    }


def bind(n: int) -> Callable[[Obj], None]:
    def mutate(pod: Obj) -> None:
        pod["spec"]["nodeName"] = f"hollow-node-{n % 100}"
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": format_time(T0 + timedelta(seconds=1))})  # fmt: skip

    return mutate


def run_pod(n: int) -> Callable[[Obj], None]:
    """The kubelet's status: every pod has its own IP (and so its own podIPs key in the FieldsV1)."""

    def mutate(pod: Obj) -> None:
        now = format_time(T0 + timedelta(seconds=3))
        host_ip = f"10.64.{n % 100 // 250}.{n % 100 % 250 + 1}"
        pod_ip = f"10.{128 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"
        pod["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.9",
                    "imageID": "",
                    "containerID": f"hollow://{pod['metadata']['uid']}/pause",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                    "lastState": {},
                }
            ],
        }

    return mutate


def deployment_body(n: int) -> Obj:
    labels = {"app": f"density-0-{n}", "skiff.dev/density": "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"density-0-{n}", "namespace": "density-0", "labels": dict(labels)},
        "spec": {
            "replicas": 30,
            "selector": {"matchLabels": {"app": f"density-0-{n}"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {"skiff.dev/generation": "1"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "pause",
                            "image": "registry.k8s.io/pause:3.9",
                            "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
                        }
                    ],
                },
            },
        },
    }


def deployment_status(n: int, ready: int, when: datetime) -> Obj:
    now = format_time(when)
    return {
        "observedGeneration": 1,
        "replicas": 30,
        "updatedReplicas": 30,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": 30 - ready,
        "conditions": [
            {"type": "Available", "status": "False", "lastUpdateTime": now, "lastTransitionTime": format_time(T0),
             "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": format_time(T0),
             "reason": "ReplicaSetUpdated", "message": f'ReplicaSet "density-0-{n}-5d8f7c9b6" is progressing.'},
        ],
    }  # fmt: skip


def lease_body(n: int) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": f"hollow-node-{n}",
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": f"hollow-node-{n}", "uid": uid(0x7A7A7A7A, n)}
            ],
        },
        "spec": {
            "holderIdentity": f"hollow-node-{n}",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-05-01T12:00:00.000000Z",
        },
    }


def node_condition(kind: str, status: str, reason: str, message: str, heartbeat: str) -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": format_time(T0)}  # fmt: skip


def node_status(n: int, heartbeat: datetime) -> Obj:
    now = format_time(heartbeat)
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": [
            node_condition("Ready", "True", "KubeletReady", "hollow kubelet is posting ready status", now),
            *(
                node_condition(kind, "False", f"KubeletHas{reason}", f"hollow kubelet has {reason.lower()}", now)
                for kind, reason in (
                    ("MemoryPressure", "SufficientMemory"),
                    ("DiskPressure", "NoDiskPressure"),
                    ("PIDPressure", "SufficientPID"),
                )
            ),
        ],
        "addresses": [{"type": "InternalIP", "address": f"10.64.{n // 250}.{n % 250 + 1}"},
                      {"type": "Hostname", "address": f"hollow-node-{n}"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux",
            "architecture": "amd64", "containerRuntimeVersion": "hollow://0", "osImage": "Skiff hollow node",
            "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
        },
        "phase": "Running",
    }  # fmt: skip


def node_body(n: int) -> Obj:
    labels = {"kubernetes.io/hostname": f"hollow-node-{n}", "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "skiff.dev/hollow": "true"}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"hollow-node-{n}", "labels": labels},
            "spec": {}, "status": node_status(n, T0)}  # fmt: skip


# -- the cases -----------------------------------------------------------------------------------------
#: One write: the stored object (None: a create) and the object record_write is given, before it.
Write = tuple[Obj | None, Obj]


@dataclass(frozen=True)
class Case:
    """Writes of one kind by one manager; ``writes(round, count)`` makes a round's, each to its own object.

    Pods are new in every round (a pod goes Pending→Running once); Deployments, Leases and Nodes are
    the same ``count`` objects written again round after round, as controllers and kubelets do.
    """

    info: ResourceInfo
    who: WriteManager
    now: datetime
    writes: Callable[[int, int], list[Write]]


def set_status(status: Obj) -> Callable[[Obj], None]:
    def mutate(obj: Obj) -> None:
        obj["status"] = status

    return mutate


def pods_created(round_: int, count: int) -> list[Write]:
    numbers = range(round_ * count, (round_ + 1) * count)
    return [(None, prepare_create(POD, pod_body(n), T0, uid(0x8D5E6F1A, n))) for n in numbers]


def pods_bound(round_: int, count: int) -> list[Write]:
    out: list[Write] = []
    for n in range(round_ * count, (round_ + 1) * count):
        pod = write(POD, RS_CONTROLLER, None, prepare_create(POD, pod_body(n), T0, uid(0x8D5E6F1A, n)), T0)
        out.append((pod, prepare_update(POD, pod, bind(n), "binding")))
    return out


def pods_running(round_: int, count: int) -> list[Write]:
    out: list[Write] = []
    t1 = T0 + timedelta(seconds=1)
    for old, bound in pods_bound(round_, count):
        assert old is not None
        n = int(old["metadata"]["uid"][-12:], 16)
        pod = write(POD, SCHEDULER, old, bound, t1)
        out.append((pod, prepare_update(POD, pod, run_pod(n), "status")))
    return out


def deployments_status(round_: int, count: int) -> list[Write]:
    out: list[Write] = []
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2 + round_)
    for n in range(count):
        created = prepare_create(DEPLOYMENT, deployment_body(n), T0, uid(0xDE, n))
        dep = write(DEPLOYMENT, RS_CONTROLLER, None, created, T0)
        first = prepare_update(DEPLOYMENT, dep, set_status(deployment_status(n, 20, t1)), "status")
        dep = write(DEPLOYMENT, DEPLOYMENT_CONTROLLER, dep, first, t1)
        out.append(
            (dep, prepare_update(DEPLOYMENT, dep, set_status(deployment_status(n, 21 + round_ % 9, t2)), "status"))
        )
    return out


def leases_renewed(round_: int, count: int) -> list[Write]:
    out: list[Write] = []
    renew_time = f"2024-05-01T12:{round_ // 6 % 60:02d}:{round_ % 6 * 10:02d}.000000Z"
    for n in range(count):
        lease = write(LEASE, KUBELET, None, prepare_create(LEASE, lease_body(n), T0, uid(0x1EA5E, n)), T0)

        def renew(obj: Obj) -> None:
            obj["spec"] = {**obj["spec"], "renewTime": renew_time}

        out.append((lease, prepare_update(LEASE, lease, renew, "")))
    return out


def nodes_heartbeat(round_: int, count: int) -> list[Write]:
    out: list[Write] = []
    heartbeat = T0 + timedelta(seconds=10 * (round_ + 1))
    for n in range(count):
        node = write(NODE, KUBELET, None, prepare_create(NODE, node_body(n), T0, uid(0x7A7A7A7A, n)), T0)
        out.append((node, prepare_update(NODE, node, set_status(node_status(n, heartbeat)), "status")))
    return out


def cases() -> dict[str, Case]:
    t1, t3 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    return {
        "pod create (replicaset controller)": Case(POD, RS_CONTROLLER, T0, pods_created),
        "pod binding spec.nodeName (scheduler)": Case(POD, SCHEDULER, t1, pods_bound),
        "pod status Pending->Running (kubelet)": Case(POD, KUBELET_STATUS, t3, pods_running),
        "deployment status update (controller)": Case(DEPLOYMENT, DEPLOYMENT_CONTROLLER, t3, deployments_status),
        "lease renewTime update (kubelet)": Case(LEASE, KUBELET, t3, leases_renewed),
        "node status heartbeat patch (kubelet)": Case(NODE, KUBELET_STATUS, t3, nodes_heartbeat),
    }


RecordWrite = Callable[[ResourceInfo, Obj | None, Obj, datetime], None]


def time_case(case: Case, batch: list[Write], record: RecordWrite = record_write) -> float:
    """µs of CPU per record_write over ``batch`` (written on copies: the batch serves every variant)."""
    copies = [(old, stored(new)) for old, new in batch]
    # The batch is the bulk of the heap: frozen, the collector's passes do not walk it (in a server the
    # objects a write allocates meet a large, settled old generation, not thousands of fresh ones).
    gc.collect()
    gc.freeze()
    try:
        with managing(case.who):
            start = time.process_time()
            for old, new in copies:
                record(case.info, old, new, case.now)
            elapsed = time.process_time() - start
    finally:
        gc.unfreeze()
    return elapsed / len(copies) * 1e6


def load_revision(rev: str) -> RecordWrite:
    """``record_write`` as the revision has it (its field_sets.py and managed_fields.py; the rest current)."""

    def source(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout

    sets = types.ModuleType("_baseline_field_sets")
    sys.modules[sets.__name__] = sets
    exec(compile(source("src/skiff/registry/field_sets.py"), f"{rev}:field_sets.py", "exec"), sets.__dict__)
    text = source("src/skiff/registry/managed_fields.py")
    text = text.replace("from skiff.registry import field_sets\n", "import _baseline_field_sets as field_sets\n")
    text = text.replace("from skiff.registry.field_sets import", "from _baseline_field_sets import")
    mf = types.ModuleType("_baseline_managed_fields")
    sys.modules[mf.__name__] = mf
    exec(compile(text, f"{rev}:managed_fields.py", "exec"), mf.__dict__)
    # The request's manager is read from the live module's context variable (``managing``).
    mf.__dict__["REQUEST_MANAGER"] = managed_fields.REQUEST_MANAGER
    record: RecordWrite = mf.__dict__["record_write"]
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=500, help="writes per round, each to its own object (500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case; best and median shown (default 5)")
    parser.add_argument("--quick", action="store_true", help="200 objects, 3 rounds")
    parser.add_argument("--against", metavar="REV", help="also time record_write as of this git revision")
    args = parser.parse_args(argv)
    count, rounds = (200, 3) if args.quick else (args.objects, args.rounds)
    variants: dict[str, RecordWrite] = {}
    if args.against:
        variants[args.against] = load_revision(args.against)
    variants["working tree"] = record_write
    print(f"record_write, µs of CPU per write ({count} objects x {rounds} rounds; best / median)")
    header = f"{'case':<42}" + "".join(f" {name[:19]:>19}" for name in variants)
    print(header + ("   ratio (best)" if len(variants) == 2 else ""))
    totals = dict.fromkeys(variants, 0.0)
    all_cases = cases()
    for name, case in all_cases.items():
        warm = case.writes(rounds, count)  # a round of its own first: the caches a running server has warm
        for record in variants.values():
            time_case(case, warm, record)
        figures: dict[str, list[float]] = {v: [] for v in variants}
        for round_ in range(rounds):
            batch = case.writes(round_, count)
            for variant, record in variants.items():  # interleaved: a change in the machine's load hits both
                figures[variant].append(time_case(case, batch, record))
        line = f"{name:<42}"
        for variant in variants:
            best = min(figures[variant])
            totals[variant] += best
            line += f" {best:>9.1f} /{statistics.median(figures[variant]):>8.1f}"
        if len(variants) == 2:
            before, after = (min(f) for f in figures.values())
            line += f"   {before / after:>6.2f}x"
        print(line)
    line = f"{'mean of the cases':<42}" + "".join(f" {t / len(all_cases):>9.1f}          " for t in totals.values())
    if len(variants) == 2:
        before, after = totals.values()
        line += f"   {before / after:>4.2f}x"
    print(line.rstrip())


if __name__ == "__main__":
    main()
