"""The namespace controller: empty a Terminating namespace, then release its ``kubernetes`` finalizer.

namespace_controller.go / namespaced_resources_deleter.go upstream.  For a
namespace with a deletionTimestamp whose ``spec.finalizers`` still holds
``kubernetes``:

1. discover every namespaced resource that can be listed and deleted
   (api_discovery, so CRDs are included);
2. delete its objects in the namespace — one deletecollection where served,
   else one delete per object — then list what remains;
3. write the status conditions kubectl describe shows
   (NamespaceDeletionDiscoveryFailure, NamespaceDeletionContentFailure,
   NamespaceContentRemaining, NamespaceFinalizersRemaining, ...);
4. while anything remains (graceful pods, objects held by finalizers),
   look again in ``RECHECK_S``; once empty, ``PUT .../finalize`` with
   ``kubernetes`` removed and DELETE the namespace again (uid precondition)
   so the API server removes it when no finalizer is left.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from skiff.api.status import ApiError
from skiff.client import is_conflict, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.errors import from_response
from skiff.client.resources import NAMESPACES
from skiff.client.timefmt import rfc3339
from skiff.controllers.api_discovery import DiscoveredResource, discover_resources
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)
Obj = dict[str, Any]

FINALIZER = "kubernetes"
RECHECK_S = 2.0


@dataclass
class ContentReport:
    """What deleting a namespace's content found: counts per resource, finalizers still holding objects."""

    remaining: dict[str, int] = field(default_factory=dict)
    finalizers: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    discovery_error: str = ""

    @property
    def empty(self) -> bool:
        return not self.remaining and not self.errors and not self.discovery_error


def _condition(kind: str, true: bool, reason: str, message: str, now: float) -> Obj:
    return {
        "type": kind,
        "status": "True" if true else "False",
        "lastTransitionTime": rfc3339(now),
        "reason": reason,
        "message": message,
    }


def deletion_conditions(report: ContentReport, now: float) -> list[Obj]:
    """The NamespaceDeletion* / Namespace*Remaining conditions for ``report`` (upstream's reasons and words)."""
    if report.discovery_error:
        discovery = (True, "DiscoveryFailed", report.discovery_error)
    else:
        discovery = (False, "ResourcesDiscovered", "All resources successfully discovered")
    if report.errors:
        failed = ", ".join(report.errors)
        content = (
            True,
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(report.errors)} remaining: {failed}",
        )
    else:
        content = (False, "ContentDeleted", "All content successfully deleted, may be waiting on finalization")
    if report.remaining:
        parts = ", ".join(f"{res} has {n} resource instances" for res, n in sorted(report.remaining.items()))
        remaining = (True, "SomeResourcesRemain", f"Some resources are remaining: {parts}")
    else:
        remaining = (False, "ContentRemoved", "All content successfully removed")
    if report.finalizers:
        parts = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(report.finalizers.items()))
        finalizers = (True, "SomeFinalizersRemain", f"Some content in the namespace has finalizers remaining: {parts}")
    else:
        finalizers = (False, "ContentHasNoFinalizers", "All content-preserving finalizers finished")
    parsing = (False, "ParsedGroupVersions", "All legacy kube types successfully parsed")
    table = (
        ("NamespaceDeletionDiscoveryFailure", discovery),
        ("NamespaceDeletionGroupVersionParsingFailure", parsing),
        ("NamespaceDeletionContentFailure", content),
        ("NamespaceContentRemaining", remaining),
        ("NamespaceFinalizersRemaining", finalizers),
    )
    return [_condition(kind, true, reason, message, now) for kind, (true, reason, message) in table]


def merge_conditions(old: list[Obj], new: list[Obj]) -> list[Obj]:
    """Keep lastTransitionTime of conditions whose status did not change; other condition types kept."""
    by_type = {c.get("type"): c for c in old}
    merged = []
    for cond in new:
        prev = by_type.get(cond["type"])
        if prev is not None and prev.get("status") == cond["status"]:
            cond = {**cond, "lastTransitionTime": prev.get("lastTransitionTime", cond["lastTransitionTime"])}
        merged.append(cond)
    kinds = {c["type"] for c in new}
    return [c for c in old if c.get("type") not in kinds] + merged


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.namespaces = self.informers.informer(NAMESPACES)
        self.namespaces.add_handler(self._changed, lambda _old, new: self._changed(new))

    def _changed(self, ns: Obj) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue_obj(ns)

    async def sync(self, key: str) -> None:
        if self.namespaces.get(key) is None:
            return
        try:
            ns = await self.client.get(NAMESPACES, key)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        finalizers = list((ns.get("spec") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            if not finalizers:
                await self._delete_again(ns)
            return
        report = await self._delete_content(key)
        await self._write_conditions(ns, deletion_conditions(report, self.clock.now()))
        if report.errors or report.discovery_error:
            raise RuntimeError(f"namespace {key}: {report.discovery_error or '; '.join(report.errors)}")
        if report.remaining:
            self.queue.add_after(key, RECHECK_S)
            return
        await self._finalize(key)

    async def _delete_content(self, namespace: str) -> ContentReport:
        report = ContentReport()
        try:
            resources = await discover_resources(self.client)
        except (ApiError, OSError) as err:
            report.discovery_error = f"Discovery failed for some groups: {err}"
            return report
        for found in resources:
            if not found.resource.namespaced or not found.can("list", "delete"):
                continue
            try:
                await self._delete_all_of(found, namespace, report)
            except ApiError as err:
                if err.code in (404, 405):
                    continue
                report.errors.append(
                    f"{found.resource.plural}.{found.resource.group}: {err.message}".replace(".:", ":")
                )
        return report

    async def _delete_all_of(self, found: DiscoveredResource, namespace: str, report: ContentReport) -> None:
        res = found.resource
        if found.can("deletecollection"):
            code, _, body = await self.client.request("DELETE", res.base(namespace))
            if code >= 300:
                raise from_response(code, body)
        else:
            for obj in (await self.client.list(res, namespace))["items"]:
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(res, obj["metadata"]["name"], namespace)
                except ApiError as err:
                    if not is_not_found(err):
                        raise
        left = (await self.client.list(res, namespace))["items"]
        if left:
            label = f"{res.plural}.{res.group}" if res.group else res.plural
            report.remaining[label] = len(left)
            for obj in left:
                for fin in obj["metadata"].get("finalizers") or []:
                    report.finalizers[fin] = report.finalizers.get(fin, 0) + 1

    async def _write_conditions(self, ns: Obj, conditions: list[Obj]) -> None:
        status = copy.deepcopy(ns.get("status") or {})
        merged = merge_conditions(list(status.get("conditions") or []), conditions)
        if merged == status.get("conditions"):
            return
        status["conditions"] = merged
        try:
            updated = await self.client.update_status(NAMESPACES, {**ns, "status": status})
        except ApiError as err:
            if is_not_found(err) or is_conflict(err):
                return  # the next pass writes them from a fresher copy
            raise
        ns.update(updated)

    async def _finalize(self, name: str) -> None:
        """PUT /finalize without ``kubernetes`` (re-read on conflict), then delete again when none is left."""
        for _ in range(3):
            ns = await self.client.get(NAMESPACES, name)
            spec = ns.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
            try:
                done = await self.client.update(NAMESPACES, ns, subresource="finalize")
            except ApiError as err:
                if is_conflict(err):
                    continue
                if is_not_found(err):
                    return
                raise
            if not (done.get("spec") or {}).get("finalizers"):
                await self._delete_again(done)
            return
        raise RuntimeError(f"namespace {name}: finalize kept conflicting")

    async def _delete_again(self, ns: Obj) -> None:
        try:
            await self.client.delete(NAMESPACES, ns["metadata"]["name"], preconditions={"uid": ns["metadata"]["uid"]})
        except ApiError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise


CONTROLLERS = [ControllerSpec("namespace", NamespaceController, workers=5, service_account="namespace-controller")]
