"""pods/binding, the legacy ``bindings`` resource, and pods/eviction.

Binding (pkg/registry/core/pod/storage BindingREST): POST a core/v1 Binding
``{target: {kind: Node, name}}``; under compare-and-swap the pod gets
``spec.nodeName``, the Binding's annotations, and condition PodScheduled=True.
A pod already bound answers 409 ``pod X is already assigned to node "Y"``, a
pod being deleted 409 ``pod X is being deleted, cannot be assigned to a
host``.  Success is ``201 Status{Success}``.

Eviction (pkg/registry/core/pod/storage/eviction.go): POST a policy/v1
Eviction.  Admission sees it first (a pods/eviction create: NodeRestriction,
NamespaceLifecycle), as upstream's create handler admits it.  Pods that are
terminal, Pending or already deleting are deleted without looking at budgets.
Otherwise the PodDisruptionBudgets selecting the pod decide: none → delete;
more than one → 500 as upstream; one with ``status.disruptionsAllowed`` < 1
(or not yet observed) → 429 TooManyRequests
with a ``DisruptionBudget`` cause; else decrement it and record the pod in
``status.disruptedPods`` (compare-and-swap on the PDB status), set the pod's
DisruptionTarget condition, and delete the pod with the Eviction's
deleteOptions.  Success is ``201 Status{Success}``.  ``dryRun=All`` (query, or
the Eviction's deleteOptions) runs every check and writes nothing, for both.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError, Cause, Details, bad_request, conflict, invalid, too_many_requests
from skiff.apiserver import bodies, query
from skiff.apiserver.negotiation import body_media_type
from skiff.apiserver.served import ResourceRegistry, ServedResources
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery
from skiff.registry.metadata import utc_now
from skiff.registry.resource import Obj

PDB_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
#: Upstream's bound on status.disruptedPods (MaxDisruptedPodSize).
MAX_DISRUPTED_PODS = 2000


def _now() -> str:
    return utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")


def created_success() -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    return web.Response(status=201, body=orjson.dumps(body), headers={"Content-Type": "application/json"})


def _registry(served: ServedResources, group: str, plural: str) -> ResourceRegistry:
    found = served.find(group, "v1", plural)
    if found is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", Details())
    return found.registry


async def read_body(request: web.Request, api_version: str, kind: str) -> Obj:
    body = await request.read()
    bodies.check_size(body)
    if not body.strip():
        raise bad_request("the body of the request is empty")
    obj, _ = bodies.decode_object(body, body_media_type(request.headers.get("Content-Type")))
    if obj.get("apiVersion") not in (None, "", api_version) or obj.get("kind") not in (None, "", kind):
        raise bad_request(
            f"the kind in the data ({obj.get('apiVersion')}, Kind={obj.get('kind')}) does not match the expected "
            f"kind ({api_version}, Kind={kind})"
        )
    return obj


# -- binding -------------------------------------------------------------------------------------


async def bind(served: ServedResources, request: web.Request, namespace: str, pod_name: str) -> web.Response:
    """pods/{name}/binding (pod_name given) or the legacy namespaces/{ns}/bindings (pod_name "")."""
    binding = await read_body(request, "v1", "Binding")
    meta = binding.get("metadata") or {}
    name = str(meta.get("name") or "")
    if pod_name and name and name != pod_name:
        raise bad_request("name in URL does not match name in Binding object")
    name = name or pod_name
    if meta.get("namespace") not in (None, "", namespace):
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    target = binding.get("target") or {}
    causes = []
    if not name:
        causes.append(Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name"))
    if target.get("kind") not in (None, "", "Node"):
        causes.append(Cause("FieldValueNotSupported", "Unsupported value: must be empty or 'Node'", "target.kind"))
    if not target.get("name"):
        causes.append(Cause("FieldValueRequired", "Required value", "target.name"))
    if causes:
        raise invalid("Binding", "", name, causes)
    pods = _registry(served, "", "pods")
    dry = query.dry_run(request.query.getall("dryRun", []))
    await pods.patch(namespace, name, _assign(name, str(target["name"]), meta), subresource="binding", dry_run=dry)
    return created_success()


def _assign(name: str, node: str, binding_meta: Obj) -> Any:
    def mutate(pod: Obj | None) -> Obj:
        if pod is None:
            raise bad_request("pod not found")  # not reached: binding never creates
        meta, spec = pod.setdefault("metadata", {}), pod.setdefault("spec", {})
        if meta.get("deletionTimestamp"):
            raise conflict("pods", "", name, f"pod {name} is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise conflict("pods", "", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
        uid, version = binding_meta.get("uid"), binding_meta.get("resourceVersion")
        if uid and uid != meta.get("uid"):
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid', '')}"
            raise conflict("pods", "", name, why)
        if version and version != meta.get("resourceVersion"):
            raise conflict("pods", "", name, "the object has been modified; please apply your changes to the "
                           "latest version and try again")  # fmt: skip
        spec["nodeName"] = node
        if binding_meta.get("annotations"):
            meta.setdefault("annotations", {}).update(binding_meta["annotations"])
        set_condition(pod, {"type": "PodScheduled", "status": "True"})
        return pod

    return mutate


def set_condition(pod: Obj, condition: Obj) -> None:
    """podutil.UpdatePodCondition: replace the condition of that type; the transition time moves on change."""
    status = pod.setdefault("status", {})
    conditions: list[Obj] = status.setdefault("conditions", [])
    now = _now()
    for i, old in enumerate(conditions):
        if old.get("type") == condition["type"]:
            changed = old.get("status") != condition["status"]
            merged = {**old, **condition, "lastProbeTime": None}
            merged["lastTransitionTime"] = (
                now if changed or not old.get("lastTransitionTime") else old["lastTransitionTime"]
            )
            conditions[i] = merged
            return
    conditions.append({**condition, "lastProbeTime": None, "lastTransitionTime": now})


# -- eviction ------------------------------------------------------------------------------------


async def evict(served: ServedResources, request: web.Request, namespace: str, pod_name: str) -> web.Response:
    eviction = await read_body(request, "policy/v1", "Eviction")
    meta = eviction.get("metadata") or {}
    if meta.get("name") and meta["name"] != pod_name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions")
    options = options if isinstance(options, dict) else None
    # dryRun comes in the query or in the Eviction's deleteOptions; it checks everything and writes nothing.
    dry = query.dry_run(request.query.getall("dryRun", []) or list((options or {}).get("dryRun") or []))
    pods = _registry(served, "", "pods")
    if isinstance(pods, GenericRegistry):
        await pods.admit_subresource_create(namespace, pod_name, eviction, "eviction", dry_run=dry)
    pod = await pods.get(namespace, pod_name)
    if not _can_ignore_budget(pod):
        await _take_disruption(served, namespace, pod, dry)
        if not dry:
            await _mark_disruption_target(pods, namespace, pod_name)
    await pods.delete(namespace, pod_name, options, dry_run=dry)
    return created_success()


def _can_ignore_budget(pod: Obj) -> bool:
    """canIgnorePDB: deleting, terminal and Pending pods are not counted by budgets."""
    phase = (pod.get("status") or {}).get("phase")
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) or phase in ("Succeeded", "Failed", "Pending")


async def _take_disruption(served: ServedResources, namespace: str, pod: Obj, dry_run: bool) -> None:
    pdbs = _registry(served, "policy", "poddisruptionbudgets")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    listed = await pdbs.list(namespace, ListQuery())
    matching = [
        pdb
        for pdb in listed.get("items") or []
        if label_selector_from_structured((pdb.get("spec") or {}).get("selector")).matches(labels)
    ]
    if not matching:
        return
    if len(matching) > 1:
        raise ApiError(500, "InternalError", MULTIPLE_PDBS)
    pdb_name = str(matching[0]["metadata"]["name"])
    pod_name = str(pod["metadata"]["name"])
    await pdbs.patch(namespace, pdb_name, _decrement(pdb_name, pod_name), subresource="status", dry_run=dry_run)


def _budget_error(message: str) -> ApiError:
    err = too_many_requests(PDB_VIOLATION, 0)
    return ApiError(err.code, err.reason, err.message, Details(causes=(Cause("DisruptionBudget", message),)))


def _decrement(pdb_name: str, pod_name: str) -> Any:
    def mutate(pdb: Obj | None) -> Obj:
        if pdb is None:
            raise bad_request("pdb not found")  # not reached: status writes never create
        status = pdb.setdefault("status", {})
        generation = (pdb.get("metadata") or {}).get("generation") or 0
        if int(status.get("observedGeneration") or 0) < int(generation):
            raise _budget_error(f"The disruption budget {pdb_name} is still being processed by the server.")
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise ApiError(403, "Forbidden", "pdb disruptions allowed is negative")
        disrupted: dict[str, str] = status.setdefault("disruptedPods", {}) or {}
        if len(disrupted) > MAX_DISRUPTED_PODS:
            raise ApiError(403, "Forbidden", "DisruptedPods map too big - too many evictions not confirmed by PDB "
                           "controller")  # fmt: skip
        if allowed == 0:
            raise _budget_error(
                f"The disruption budget {pdb_name} needs {status.get('desiredHealthy', 0)} healthy pods and has "
                f"{status.get('currentHealthy', 0)} currently"
            )
        status["disruptionsAllowed"] = allowed - 1
        disrupted[pod_name] = _now()
        status["disruptedPods"] = disrupted
        return pdb

    return mutate


async def _mark_disruption_target(pods: ResourceRegistry, namespace: str, name: str) -> None:
    """The DisruptionTarget condition upstream adds before an eviction deletes the pod."""
    condition = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    }

    def mutate(pod: Obj | None) -> Obj:
        if pod is None:
            raise bad_request("pod not found")
        set_condition(pod, condition)
        return pod

    await pods.patch(namespace, name, mutate, subresource="status")
