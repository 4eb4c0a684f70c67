"""The resource quota controller: ResourceQuota status.hard and status.used.

Upstream: pkg/controller/resourcequota.  A quota is recalculated when it
changes, when an object it can count changes in its namespace (pods,
services, configmaps, secrets, persistentvolumeclaims,
replicationcontrollers, resourcequotas: watched), and every
``resource-quota-sync-period`` (option, default 300 s, upstream's full
resync) for ``count/<resource>.<group>`` of other kinds, which are listed
from the API server (the group's preferred version comes from discovery,
so custom resources count too).  The arithmetic is resourcequota_usage's;
status is written only when it changed.

Enforcement at admission (rejecting a create that would exceed ``hard``,
charging ``status.used`` as it admits) is the API server's
(``registry.admission.resource_quota``); it charges with the same evaluators
(``skiff.api.quota``), and this controller corrects what admission charged
for writes that failed later.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import Informer
from skiff.client.resources import (
    CONFIGMAPS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    REPLICATIONCONTROLLERS,
    RESOURCEQUOTAS,
    SECRETS,
    SERVICES,
    Resource,
)
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.resourcequota_usage import compute_used, lists_needed, same_amounts

Obj = dict[str, Any]
NAMESPACE_INDEX = "resourcequota/namespace"
DEFAULT_SYNC_PERIOD_S = 300.0
WATCHED = {
    "pods": PODS,
    "services": SERVICES,
    "configmaps": CONFIGMAPS,
    "secrets": SECRETS,
    "persistentvolumeclaims": PERSISTENTVOLUMECLAIMS,
    "replicationcontrollers": REPLICATIONCONTROLLERS,
    "resourcequotas": RESOURCEQUOTAS,
}


def namespace_of(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace", ""))]


def quota_status(quota: Mapping[str, Any], used: Mapping[str, str]) -> Obj:
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    return {"hard": hard, "used": dict(used)}


class ResourceQuotaController(Controller):
    name = "resourcequota"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.sync_period_s = float(context.options.get("resource-quota-sync-period", DEFAULT_SYNC_PERIOD_S))
        self.informers_by_list: dict[str, Informer] = {}
        for list_name, resource in WATCHED.items():
            informer = self.informers.informer(resource)
            informer.add_index(NAMESPACE_INDEX, namespace_of)
            informer.add_handler(
                on_add=self._object_changed,
                on_update=self._object_updated,
                on_delete=self._object_changed,
            )
            self.informers_by_list[list_name] = informer
        self.quotas = self.informers_by_list["resourcequotas"]
        self._versions: dict[str, str] = {}

    def _object_updated(self, old: Obj, new: Obj) -> None:
        if old.get("metadata", {}).get("resourceVersion") != new.get("metadata", {}).get("resourceVersion"):
            self._object_changed(new)

    def _object_changed(self, obj: Obj) -> None:
        for quota in self.quotas.by_index(NAMESPACE_INDEX, namespace_of(obj)[0]):
            self.enqueue_obj(quota)

    async def _resource_for(self, count_key: str) -> Resource | None:
        """``deployments.apps`` → the Resource at the group's preferred version (discovery), None if unknown."""
        plural, _, group = count_key.partition(".")
        if not group:
            return Resource("", "v1", plural, "")
        version = self._versions.get(group)
        if version is None:
            code, _, body = await self.client.request("GET", f"/apis/{group}")
            if code != 200:
                return None
            version = str(((orjson.loads(body) or {}).get("preferredVersion") or {}).get("version") or "")
            if not version:
                return None
            self._versions[group] = version
        return Resource(group, version, plural, "")

    async def _objects(self, namespace: str, needed: set[str]) -> dict[str, list[Mapping[str, Any]]]:
        objects: dict[str, list[Mapping[str, Any]]] = {}
        for list_name in needed:
            informer = self.informers_by_list.get(list_name)
            if informer is not None:
                objects[list_name] = list(informer.by_index(NAMESPACE_INDEX, namespace))
                continue
            resource = await self._resource_for(list_name)
            if resource is None:
                continue
            try:
                listed = await self.client.list(resource, namespace)
            except ApiError as err:
                if not is_not_found(err):
                    raise
                continue
            objects[list_name] = list(listed.get("items") or [])
        return objects

    async def sync(self, key: str) -> None:
        quota = self.quotas.get(key)
        if quota is None:
            return
        self.queue.add_after(key, self.sync_period_s)
        spec = quota.get("spec") or {}
        hard = spec.get("hard") or {}
        namespace = str(quota["metadata"].get("namespace", ""))
        objects = await self._objects(namespace, lists_needed(hard))
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        used = compute_used(hard, spec.get("scopes") or [], objects, scope_selector=spec.get("scopeSelector"), now=now)
        status = quota_status(quota, used)
        current = quota.get("status") or {}
        if same_amounts(status["hard"], current.get("hard")) and same_amounts(status["used"], current.get("used")):
            return
        await self.client.update_status(RESOURCEQUOTAS, dict(quota, status=status))


CONTROLLERS = [
    ControllerSpec("resourcequota", ResourceQuotaController, workers=2, service_account="resourcequota-controller")
]
