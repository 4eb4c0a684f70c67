"""Informers: a local, always-catching-up copy of one resource, with change callbacks.

The client-go contract: list once, then watch from the list's resourceVersion;
bookmarks move the resume point; a dropped stream resumes from the last
version seen; a 410 Expired means events were lost, so relist and deliver the
difference (adds, updates, deletes) so handlers never miss a transition.
Handlers are plain callables run on the event loop in event order; they
should only enqueue keys (STYLE.md, "A controller").  ``on_delete`` gets the
last state we knew.  Indexes map index values to keys and stay consistent
with the cache at every callback.

Cached objects carry no ``metadata.managedFields`` (client-go's
TransformStripManagedFields, which kube-scheduler and the
controller-manager install): no controller reads them, they are often a
third of an object, and an update sent without them keeps the stored ones.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from skiff.api.status import ApiError
from skiff.client.resources import Resource
from skiff.client.rest import ApiClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], list[str]]
RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0


def meta_key(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go MetaNamespaceKeyFunc)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


@dataclass
class _Handler:
    on_add: Callable[[Obj], None] | None
    on_update: Callable[[Obj, Obj], None] | None
    on_delete: Callable[[Obj], None] | None


class Informer:
    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        namespace: str | None = None,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        resync_s: float | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.resync_s = resync_s
        self._items: dict[str, Obj] = {}
        self._handlers: list[_Handler] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.resource_version = ""

    # -- reading -----------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        return [self._items[k] for k in self._indexes[name].get(value, ())]

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    # -- wiring ------------------------------------------------------------------------------------

    def add_handler(
        self,
        on_add: Callable[[Obj], None] | None = None,
        on_update: Callable[[Obj, Obj], None] | None = None,
        on_delete: Callable[[Obj], None] | None = None,
    ) -> None:
        """Handlers added after the first sync are told about existing objects as adds, like client-go."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self._synced.is_set() and on_add:
            for obj in list(self._items.values()):
                on_add(obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    def start(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}"))
            if self.resync_s:
                self._tasks.append(asyncio.create_task(self._resync_loop(self.resync_s)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()

    # -- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                delay = RETRY_MIN_S
            except ApiError as err:
                if err.code == 410:
                    log.info("%s: watch expired, relisting", self.resource.plural)
                    need_list = True
                    continue
                log.warning("%s: %s (%s); retrying in %.1fs", self.resource.plural, err.message, err.code, delay)
            except (TimeoutError, OSError, aiohttp.ClientError) as err:
                log.warning("%s: connection failed: %s; retrying in %.1fs", self.resource.plural, err, delay)
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, RETRY_MAX_S)

    async def _relist(self) -> None:
        listed = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector, field_selector=self.field_selector
        )
        fresh = {meta_key(obj): obj for obj in listed.get("items") or []}
        self.resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        for key in [k for k in self._items if k not in fresh]:
            self._delete(key)
        for key, obj in fresh.items():
            self._upsert(key, obj)
        self._synced.set()

    async def _watch(self) -> None:
        async for event in self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=random.randint(300, 600),
        ):
            rv = (event.object.get("metadata") or {}).get("resourceVersion")
            if event.type == "BOOKMARK":
                self.resource_version = str(rv or self.resource_version)
                continue
            key = meta_key(event.object)
            if event.type == "DELETED":
                self._delete(key, event.object)
            else:
                self._upsert(key, event.object)
            if rv:
                self.resource_version = str(rv)

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in list(self._items.values()):
                for h in self._handlers:
                    if h.on_update:
                        h.on_update(obj, obj)

    # -- cache mutation ----------------------------------------------------------------------------

    def _upsert(self, key: str, obj: Obj) -> None:
        _strip_managed_fields(obj)
        old = self._items.get(key)
        if old is not None and _rv(old) == _rv(obj):
            return
        self._reindex(key, old, obj)
        self._items[key] = obj
        for h in self._handlers:
            if old is None and h.on_add:
                h.on_add(obj)
            elif old is not None and h.on_update:
                h.on_update(old, obj)

    def _delete(self, key: str, final: Obj | None = None) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        if final is not None:
            _strip_managed_fields(final)
        self._reindex(key, old, None)
        for h in self._handlers:
            if h.on_delete:
                h.on_delete(final or old)

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._index_funcs.items():
            index = self._indexes[name]
            for value in func(old) if old is not None else ():
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in func(new) if new is not None else ():
                index.setdefault(value, set()).add(key)


def _strip_managed_fields(obj: Obj) -> None:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


def _rv(obj: Obj) -> Any:
    return (obj.get("metadata") or {}).get("resourceVersion")


class InformerFactory:
    """One informer per (resource, namespace, selectors), shared by every controller of a process."""

    def __init__(self, client: ApiClient, *, resync_s: float | None = None) -> None:
        self.client = client
        self.resync_s = resync_s
        self._informers: dict[tuple[Resource, str | None, str | None, str | None], Informer] = {}
        self._started = False

    def informer(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> Informer:
        key = (resource, namespace, field_selector, label_selector)
        found = self._informers.get(key)
        if found is None:
            found = Informer(
                self.client,
                resource,
                namespace,
                field_selector=field_selector,
                label_selector=label_selector,
                resync_s=self.resync_s,
            )
            self._informers[key] = found
            if self._started:
                found.start()
        return found

    async def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
        self._started = False
