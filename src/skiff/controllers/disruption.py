"""The disruption controller: PodDisruptionBudget status.

Upstream: pkg/controller/disruption.  A PDB is synced when it changes, when
a pod of its namespace that it selects (before or after the change)
changes, and when a workload controller of its namespace changes (its scale
feeds ``expectedPods``).  The arithmetic is disruption_status's; this
module finds the pods (the PDB's selector over the namespace's pods; an
empty selector selects every pod, a missing one none) and the controllers'
scale (Deployment through its ReplicaSets, ReplicaSet, StatefulSet,
ReplicationController), and writes status only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError as SelectorError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import (
    DEPLOYMENTS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
)
from skiff.client.timefmt import rfc3339
from skiff.controllers.disruption_status import PdbError, compute_counts, pdb_status
from skiff.controllers.manager import ControllerSpec

Obj = dict[str, Any]
NAMESPACE_INDEX = "disruption/namespace"


def namespace_of(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace", ""))]


def pdb_selector(pdb: Mapping[str, Any]) -> LabelSelector:
    try:
        return label_selector_from_structured((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return LabelSelector.match_nothing()


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def _replicas(obj: Mapping[str, Any]) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("controllermanager")
        self.pdbs = self.informers.informer(PODDISRUPTIONBUDGETS)
        self.pods = self.informers.informer(PODS)
        self.workloads = {
            "ReplicaSet": self.informers.informer(REPLICASETS),
            "Deployment": self.informers.informer(DEPLOYMENTS),
            "StatefulSet": self.informers.informer(STATEFULSETS),
            "ReplicationController": self.informers.informer(REPLICATIONCONTROLLERS),
        }
        self.pdbs.add_index(NAMESPACE_INDEX, namespace_of)
        self.pods.add_index(NAMESPACE_INDEX, namespace_of)
        self.pdbs.add_handler(on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new))
        self.pods.add_handler(
            on_add=lambda pod: self._pod_changed(None, pod),
            on_update=self._pod_changed,
            on_delete=lambda pod: self._pod_changed(pod, None),
        )
        for informer in self.workloads.values():
            informer.add_handler(
                on_add=self._workload_changed,
                on_update=lambda old, new: self._workload_changed(new),
                on_delete=self._workload_changed,
            )

    def _pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        pod = new or old
        if pod is None:
            return
        for pdb in self.pdbs.by_index(NAMESPACE_INDEX, namespace_of(pod)[0]):
            selector = pdb_selector(pdb)
            if any(p is not None and selector.matches(p["metadata"].get("labels")) for p in (old, new)):
                self.enqueue_obj(pdb)

    def _workload_changed(self, workload: Obj) -> None:
        for pdb in self.pdbs.by_index(NAMESPACE_INDEX, namespace_of(workload)[0]):
            self.enqueue_obj(pdb)

    def find_scale(self, ref: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
        """The object whose scale governs a pod with controller ``ref``: (uid, replicas), or None."""
        kind = ref.get("kind")
        informer = self.workloads.get(str(kind))
        if informer is None:
            return None
        owner = informer.get(f"{namespace}/{ref.get('name')}")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        if kind == "ReplicaSet":
            parent = _controller_ref(owner)
            if parent is not None and parent.get("kind") == "Deployment":
                return self.find_scale(parent, namespace)
        return str(owner["metadata"]["uid"]), _replicas(owner)

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        namespace = str(pdb["metadata"].get("namespace", ""))
        selector = pdb_selector(pdb)
        pods = [
            p for p in self.pods.by_index(NAMESPACE_INDEX, namespace) if selector.matches(p["metadata"].get("labels"))
        ]
        error = None
        try:
            counts = compute_counts(pdb, pods, self.find_scale)
        except PdbError as err:
            counts, error = None, str(err)
            message = f"Failed to calculate the number of expected pods: {err}"
            self.recorder.event(pdb, "Warning", "CalculateExpectedPodCountFailed", message)
        status = pdb_status(pdb, counts, error, rfc3339(self.clock.now()))
        if status == (pdb.get("status") or {}):
            return
        if not pods:
            self.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        await self.client.update_status(PODDISRUPTIONBUDGETS, dict(pdb, status=status))


CONTROLLERS = [ControllerSpec("disruption", DisruptionController, workers=2, service_account="disruption-controller")]
