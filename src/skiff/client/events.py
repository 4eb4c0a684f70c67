"""Events about objects, as ``kubectl describe`` and ``kubectl get events`` show them.

Fire and forget: recording never blocks or fails the caller (an event lost to
an API hiccup is logged, as client-go's broadcaster does).  Identical events
(same object, type, reason, message) are folded into one Event whose
``count`` and ``lastTimestamp`` grow, like client-go's correlator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from skiff.api.status import ApiError
from skiff.client.clock import Clock, RealClock
from skiff.client.resources import EVENTS
from skiff.client.rest import ApiClient
from skiff.client.timefmt import rfc3339

log = logging.getLogger(__name__)
MAX_REMEMBERED = 4096


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "", clock: Clock | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock or RealClock()
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        task = asyncio.create_task(self._record(obj, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for the events recorded so far to be written (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        identity = (str(meta.get("uid") or meta.get("name")), type_, reason, message)
        now = rfc3339(self.clock.now())
        try:
            previous = self._seen.get(identity)
            if previous is not None:
                ns, name, count = previous
                patch = {"count": count + 1, "lastTimestamp": now}
                await self.client.patch(EVENTS, name, patch, ns)
                self._seen[identity] = (ns, name, count + 1)
                return
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta.get('name')}.{time.time_ns():x}", "namespace": namespace},
                "involvedObject": _reference(obj),
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": self.component,
                "reportingInstance": self.host,
            }
            created = await self.client.create(EVENTS, body, namespace)
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.pop(next(iter(self._seen)))
            self._seen[identity] = (namespace, created["metadata"]["name"], 1)
        except (ApiError, OSError, aiohttp.ClientError) as err:
            log.warning("event %s %s on %s not recorded: %s", type_, reason, meta.get("name"), err)


def _reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    ref = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    return {k: v for k, v in ref.items() if v}
