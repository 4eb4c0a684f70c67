"""The endpoints controller: one core/v1 Endpoints per Service with a selector.

Upstream: pkg/controller/endpoint.  Services and pods are watched; a pod
change enqueues every Service of its namespace whose selector matched the
pod before or after the change.  ``sync`` computes the subsets
(endpoints_subsets.compute_subsets) and writes only when subsets or labels
differ.  The Endpoints of a deleted Service are deleted; a Service without
a selector is left alone (its Endpoints belong to the user).  The
``endpoints.kubernetes.io/last-change-trigger-time`` annotation carries the
earliest change (as this controller saw it) that the write reflects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.client import ApiClient, ApiError, is_not_found
from skiff.client.clock import Clock
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import Informer, meta_key, split_key
from skiff.client.resources import ENDPOINTS, PODS, SERVICES
from skiff.client.timefmt import rfc3339
from skiff.controllers.endpoints_pods import selector_matches, service_selector
from skiff.controllers.endpoints_subsets import (
    OVER_CAPACITY_ANNOTATION,
    TRIGGER_TIME_ANNOTATION,
    compute_subsets,
    endpoints_labels,
    needs_update,
    truncate_subsets,
)
from skiff.controllers.manager import ControllerSpec

Obj = dict[str, Any]
NAMESPACE_INDEX = "endpoints/namespace"


def namespace_of(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace", ""))]


class ServicePodTracker:
    """Maps pod changes to the keys of the Services that select them, and remembers trigger times.

    Shared logic of the Endpoints and EndpointSlice controllers: handlers
    call ``pod_changed``/``service_changed``; ``take_trigger_time`` hands the
    earliest pending change time to the sync that writes it.
    """

    def __init__(self, services: Informer, clock: Clock, enqueue: Any) -> None:
        self.services = services
        self.clock = clock
        self._enqueue = enqueue
        self._triggers: dict[str, float] = {}
        services.add_index(NAMESPACE_INDEX, namespace_of)

    def _note(self, key: str) -> None:
        self._triggers.setdefault(key, self.clock.now())
        self._enqueue(key)

    def take_trigger_time(self, key: str) -> float | None:
        return self._triggers.pop(key, None)

    def service_changed(self, service: Obj) -> None:
        self._note(meta_key(service))

    def services_selecting(self, pod: Mapping[str, Any]) -> set[str]:
        namespace = str((pod.get("metadata") or {}).get("namespace", ""))
        keys = set()
        for service in self.services.by_index(NAMESPACE_INDEX, namespace):
            selector = service_selector(service)
            if selector is not None and selector_matches(selector, pod):
                keys.add(meta_key(service))
        return keys

    def pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        keys: set[str] = set()
        for pod in (old, new):
            if pod is not None:
                keys |= self.services_selecting(pod)
        for key in keys:
            self._note(key)

    def selected_pods(self, pods: Informer, service: Mapping[str, Any]) -> list[Obj]:
        selector = service_selector(service) or {}
        namespace = str((service.get("metadata") or {}).get("namespace", ""))
        return [p for p in pods.by_index(NAMESPACE_INDEX, namespace) if selector_matches(selector, p)]


class EndpointsController(Controller):
    name = "endpoint"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.endpoints = self.informers.informer(ENDPOINTS)
        self.pods.add_index(NAMESPACE_INDEX, namespace_of)
        self.tracker = ServicePodTracker(self.services, self.clock, self.enqueue)
        self.services.add_handler(
            on_add=self.tracker.service_changed,
            on_update=lambda old, new: self.tracker.service_changed(new),
            on_delete=self.tracker.service_changed,
        )
        self.pods.add_handler(
            on_add=lambda pod: self.tracker.pod_changed(None, pod),
            on_update=self._pod_updated,
            on_delete=lambda pod: self.tracker.pod_changed(pod, None),
        )
        self.endpoints.add_handler(on_delete=self._endpoints_deleted)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old.get("metadata", {}).get("resourceVersion") != new.get("metadata", {}).get("resourceVersion"):
            self.tracker.pod_changed(old, new)

    def _endpoints_deleted(self, endpoints: Obj) -> None:
        key = meta_key(endpoints)
        if self.services.get(key) is not None:
            self.enqueue(key)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.tracker.take_trigger_time(key)
            if self.endpoints.get(key) is not None:
                await delete_ignoring_not_found(self.client, name, namespace)
            return
        if service_selector(service) is None:
            self.tracker.take_trigger_time(key)
            return
        subsets, truncated = truncate_subsets(compute_subsets(service, self.tracker.selected_pods(self.pods, service)))
        labels = endpoints_labels(service)
        current = self.endpoints.get(key)
        trigger = self.tracker.take_trigger_time(key)
        annotations = dict(((current or {}).get("metadata") or {}).get("annotations") or {})
        was_truncated = annotations.pop(OVER_CAPACITY_ANNOTATION, None) is not None
        if current is not None and not needs_update(current, subsets, labels) and was_truncated == truncated:
            return
        if truncated:
            annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
        if trigger is not None:
            annotations[TRIGGER_TIME_ANNOTATION] = rfc3339(trigger)
        if current is None:
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
                "subsets": subsets,
            }
            await self.client.create(ENDPOINTS, body, namespace)
            return
        body = dict(current)
        body["metadata"] = dict(current["metadata"], labels=labels, annotations=annotations)
        body["subsets"] = subsets
        await self.client.update(ENDPOINTS, body)


async def delete_ignoring_not_found(client: ApiClient, name: str, namespace: str | None) -> None:
    try:
        await client.delete(ENDPOINTS, name, namespace)
    except ApiError as err:
        if not is_not_found(err):
            raise


CONTROLLERS = [ControllerSpec("endpoint", EndpointsController, workers=2, service_account="endpoint-controller")]
