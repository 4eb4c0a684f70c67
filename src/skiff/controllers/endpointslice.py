"""The EndpointSlice controller: discovery.k8s.io/v1 slices for every Service with a selector.

Upstream: pkg/controller/endpointslice.  The same triggers as the
Endpoints controller (services, pods; nodes only for zones), and slices
labelled ``endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io``
and ``kubernetes.io/service-name``, owned by their Service.  ``sync``
computes the plan with endpointslice_packing.reconcile and writes it.

Slices are created with generateName, so the informer cannot be trusted
to show our own writes at once: like upstream's EndpointSliceTracker we
remember what we wrote (names and resourceVersions, and deletions) and
requeue a Service whose cached slices are older than our own writes,
which would otherwise create duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import split_key
from skiff.client.resources import ENDPOINTSLICES, NODES, PODS, SERVICES
from skiff.client.timefmt import rfc3339
from skiff.controllers.controller_ref import new_controller_ref
from skiff.controllers.endpoints import NAMESPACE_INDEX, ServicePodTracker, namespace_of
from skiff.controllers.endpoints_pods import service_selector
from skiff.controllers.endpoints_subsets import TRIGGER_TIME_ANNOTATION
from skiff.controllers.endpointslice_packing import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
    ZONE_LABEL,
    SlicePlan,
    desired_endpoints,
    reconcile,
)
from skiff.controllers.manager import ControllerSpec

Obj = dict[str, Any]
SERVICE_INDEX = "endpointslice/service"
STALE_RETRY_S = 0.05


def slice_service_key(slice_: Obj) -> list[str]:
    meta = slice_.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{service}"] if service else []


def node_zone(node: Mapping[str, Any]) -> str | None:
    zone = ((node.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)
    return str(zone) if zone else None


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class SliceTracker:
    """What this controller last wrote per Service, to tell a stale cache from the truth."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, int]] = {}
        self._deleted: dict[str, set[str]] = {}

    def wrote(self, key: str, slice_: Mapping[str, Any]) -> None:
        self._written.setdefault(key, {})[str(slice_["metadata"]["name"])] = _rv(slice_)

    def deleted(self, key: str, name: str) -> None:
        self._written.get(key, {}).pop(name, None)
        self._deleted.setdefault(key, set()).add(name)

    def gone(self, key: str, name: str) -> None:
        """The watch reported ``name`` deleted: the cache is current about it, whoever deleted it."""
        self._written.get(key, {}).pop(name, None)
        self._deleted.get(key, set()).discard(name)

    def forget(self, key: str) -> None:
        self._written.pop(key, None)
        self._deleted.pop(key, None)

    def stale(self, key: str, cached: list[Obj]) -> bool:
        by_name = {str(s["metadata"]["name"]): s for s in cached}
        for name, rv in self._written.get(key, {}).items():
            if name not in by_name or _rv(by_name[name]) < rv:
                return True
        if any(name in by_name for name in self._deleted.get(key, ())):
            return True
        self.forget(key)  # the cache has caught up with every write: nothing left to wait for
        return False


class EndpointSliceController(Controller):
    name = "endpointslice"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.max_per_slice = int(context.options.get("max-endpoints-per-slice", MAX_ENDPOINTS_PER_SLICE))
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.slices = self.informers.informer(ENDPOINTSLICES, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")
        self.pods.add_index(NAMESPACE_INDEX, namespace_of)
        self.slices.add_index(SERVICE_INDEX, slice_service_key)
        self.tracker = ServicePodTracker(self.services, self.clock, self.enqueue)
        self.written = SliceTracker()
        self.services.add_handler(
            on_add=self.tracker.service_changed,
            on_update=lambda old, new: self.tracker.service_changed(new),
            on_delete=self.tracker.service_changed,
        )
        self.pods.add_handler(
            on_add=lambda pod: self.tracker.pod_changed(None, pod),
            on_update=self.tracker.pod_changed,
            on_delete=lambda pod: self.tracker.pod_changed(pod, None),
        )
        self.slices.add_handler(on_update=self._slice_changed, on_delete=self._slice_deleted)
        self.nodes.add_handler(on_update=self._node_updated)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        """A node's zone feeds its endpoints' ``zone``: a (rare) zone change resyncs every service."""
        if node_zone(old) != node_zone(new):
            for key in self.services.keys():
                self.enqueue(key)

    def _slice_changed(self, old: Obj, new: Obj) -> None:
        for key in slice_service_key(new):
            if self.services.get(key) is not None and old is not new:
                self.enqueue(key)

    def _slice_deleted(self, slice_: Obj) -> None:
        for key in slice_service_key(slice_):
            self.written.gone(key, str(slice_["metadata"]["name"]))
            self.enqueue(key)

    def zones(self) -> dict[str, str]:
        zones = {}
        for node in self.nodes.list():
            zone = node_zone(node)
            if zone:
                zones[str(node["metadata"]["name"])] = zone
        return zones

    async def sync(self, key: str) -> None:
        namespace, _ = split_key(key)
        service = self.services.get(key)
        existing = self.slices.by_index(SERVICE_INDEX, key)
        if self.written.stale(key, existing):
            self.queue.add_after(key, STALE_RETRY_S)
            return
        # ExternalName services get no endpoints (upstream issue 105986); no selector: user-managed.
        external = service is not None and (service.get("spec") or {}).get("type") == "ExternalName"
        if service is None or service_selector(service) is None or external:
            self.tracker.take_trigger_time(key)
            for slice_ in existing:
                await self._delete(key, str(slice_["metadata"]["name"]), namespace)
            if service is None:
                self.written.forget(key)
            return
        desired = desired_endpoints(service, self.tracker.selected_pods(self.pods, service), self.zones())
        owner = new_controller_ref(service, "v1", "Service")
        plan = reconcile(service, owner, existing, desired, self.max_per_slice)
        trigger = self.tracker.take_trigger_time(key)
        if not plan.empty:
            await self._apply(key, namespace, plan, trigger)

    async def _apply(self, key: str, namespace: str | None, plan: SlicePlan, trigger: float | None) -> None:
        for name in plan.delete:
            await self._delete(key, name, namespace)
        for body in plan.update:
            _annotate(body, trigger)
            self.written.wrote(key, await self.client.update(ENDPOINTSLICES, body))
        for body in plan.create:
            _annotate(body, trigger)
            self.written.wrote(key, await self.client.create(ENDPOINTSLICES, body, namespace))

    async def _delete(self, key: str, name: str, namespace: str | None) -> None:
        try:
            await self.client.delete(ENDPOINTSLICES, name, namespace)
        except ApiError as err:
            if not is_not_found(err):
                raise
        self.written.deleted(key, name)


def _annotate(body: Obj, trigger: float | None) -> None:
    if trigger is None:
        return
    meta = body.setdefault("metadata", {})
    meta["annotations"] = dict(meta.get("annotations") or {}, **{TRIGGER_TIME_ANNOTATION: rfc3339(trigger)})


CONTROLLERS = [
    ControllerSpec("endpointslice", EndpointSliceController, workers=2, service_account="endpointslice-controller")
]
