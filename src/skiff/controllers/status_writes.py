"""Writing a controller's status fields the way upstream controllers do: UpdateStatus, never a patch.

The controller roles of the RBAC bootstrap policy grant ``update`` on
``<resource>/status`` and nothing else (daemon-set, statefulset, cronjob...),
so status goes through PUT.  ``store_status`` merges the fields a controller
owns over the object's status and PUTs it, carrying the resourceVersion it
was read at; on Conflict it reads the object again and retries once
(storeDaemonSetStatus' StatusUpdateRetries), so the fields of other writers
are kept and a stale cache costs one extra GET instead of a failed sync.
"""

from __future__ import annotations

from typing import Any

from skiff.client import ApiClient, ApiError, Resource, is_conflict, is_not_found

Obj = dict[str, Any]


async def store_status(client: ApiClient, res: Resource, obj: Obj, changes: Obj) -> Obj | None:
    """PUT ``obj`` with ``changes`` over its status (a None value removes the field); None when it is gone."""
    meta = obj["metadata"]
    body = obj
    for attempt in range(2):
        merged = {**(body.get("status") or {}), **changes}
        status = {key: value for key, value in merged.items() if value is not None}
        try:
            return await client.update_status(res, {**body, "status": status})
        except ApiError as err:
            if is_not_found(err):
                return None
            if not is_conflict(err) or attempt:
                raise
        body = await client.get(res, meta["name"], meta.get("namespace"))
    return None
