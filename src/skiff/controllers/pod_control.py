"""Creating and deleting a controller's pods through the API, with events.

Upstream: ``GetPodFromTemplate`` and ``RealPodControl`` (pkg/controller/
controller_utils.go).  A pod made from a template gets the template's labels,
annotations and finalizers, its spec, the controller's namespace, a
``generateName`` of ``<controller name>-`` and the controller reference as its
only ownerReference.  Successful writes record ``SuccessfulCreate`` /
``SuccessfulDelete`` events on the controller, failures ``FailedCreate`` /
``FailedDelete`` (Warning); errors are re-raised for the caller to count
against its expectations.

Shared by the ReplicaSet, ReplicationController, DaemonSet, StatefulSet and
Job controllers.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from skiff.api.status import ApiError
from skiff.client import ApiClient
from skiff.client.events import EventRecorder
from skiff.client.resources import PODS

Obj = dict[str, Any]


def pods_prefix(controller_name: str) -> str:
    """getPodsPrefix: ``<name>-`` (the API server appends 5 random characters and truncates as needed)."""
    return f"{controller_name}-"


def pod_from_template(
    template: Mapping[str, Any],
    parent: Mapping[str, Any],
    controller_ref: Mapping[str, Any] | None,
    *,
    name: str | None = None,
) -> Obj:
    """The pod a controller creates from ``template`` (GetPodFromTemplate); ``name`` overrides generateName."""
    tmeta = template.get("metadata") or {}
    pmeta = parent.get("metadata") or {}
    meta: Obj = {"namespace": pmeta.get("namespace", "")}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = pods_prefix(str(pmeta.get("name", "")))
    for field in ("labels", "annotations"):
        if tmeta.get(field):
            meta[field] = dict(tmeta[field])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if controller_ref is not None:
        meta["ownerReferences"] = [dict(controller_ref)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


async def create_pod(
    client: ApiClient,
    recorder: EventRecorder | None,
    parent: Mapping[str, Any],
    pod: Mapping[str, Any],
) -> Obj:
    """Create ``pod`` (from ``pod_from_template``) in the parent's namespace; events on the parent."""
    namespace = str((parent.get("metadata") or {}).get("namespace") or "")
    try:
        created = await client.create(PODS, dict(pod), namespace)
    except ApiError as err:
        if recorder is not None:
            recorder.event(dict(parent), "Warning", "FailedCreate", f"Error creating: {err.message}")
        raise
    if recorder is not None:
        recorder.event(dict(parent), "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
    return created


async def delete_pod(
    client: ApiClient,
    recorder: EventRecorder | None,
    parent: Mapping[str, Any],
    namespace: str,
    name: str,
) -> None:
    """Delete a pod for ``parent``; a pod already gone counts as deleted (no error, no event)."""
    try:
        await client.delete(PODS, name, namespace)
    except ApiError as err:
        if err.code == 404:
            return
        if recorder is not None:
            recorder.event(dict(parent), "Warning", "FailedDelete", f"Error deleting: {err.message}")
        raise
    if recorder is not None:
        recorder.event(dict(parent), "Normal", "SuccessfulDelete", f"Deleted pod: {name}")


async def slow_start_batch(count: int, initial_batch_size: int, make: Callable[[], Awaitable[object]]) -> int:
    """controller.slowStartBatch: call ``make`` ``count`` times in doubling concurrent batches (1, 2, 4, ...).

    Stops after the first batch with a failure, so a systematic error (quota,
    bad template) costs one call rather than ``count``.  Returns the number of
    successful calls; re-raises the first error after the batch finishes as an
    ``BatchError`` carrying the success count.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(make() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        if errors:
            for err in errors:
                if not isinstance(err, Exception):
                    raise err
            raise BatchError(successes, errors[0])  # type: ignore[arg-type]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes


class BatchError(Exception):
    """A slow-start batch stopped at an error; ``successes`` calls had succeeded."""

    def __init__(self, successes: int, error: Exception) -> None:
        super().__init__(str(error))
        self.successes = successes
        self.error = error
