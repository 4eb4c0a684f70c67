"""The CRD establisher: CustomResourceDefinitions in the store → resources served right now.

A controller inside the API server, as apiextensions-apiserver's naming,
establishing, finalizer and discovery controllers plus its CR handler
together:

* **Informer.** It lists CRDs through their registry, then watches from the
  list's resourceVersion (re-listing when the watch ends or expires) and
  keeps the latest object per name; every event only marks the name dirty.
* **sync(name)**, one name at a time:

  - gone from the store → stop serving its rows and its watch cache;
  - being deleted → the ``customresourcecleanup.apiextensions.k8s.io``
    finalizer: refuse creates, set Terminating=True (InstanceDeletionInProgress),
    delete every custom resource through the storage registry, retry until
    none is left, set Terminating=False (InstanceDeletionCompleted), remove
    the finalizer (which deletes the CRD) and stop serving;
  - a CRD whose group and plural are a built-in resource's (it would share
    that resource's storage) is never served, and its deletion never deletes
    objects (``OverlappingBuiltInResource``), as upstream;
  - otherwise compute the accepted names (``naming``); when accepted, serve
    every ``served`` version — one ``VersionedRegistry`` per version over one
    watch cache of the storage version, all rows added to ``ServedResources``
    (hence discovery and OpenAPI) — and only then write status
    (acceptedNames, NamesAccepted, Established=True, storedVersions), so a
    client that saw Established finds the resource served.

* Rows are rebuilt when the CRD's generation, uid or accepted names change;
  the watch cache is kept unless the storage version, kind or scope changed.
* ``start()`` returns once every CRD already stored is served, so a
  restarted server is ready with its custom resources.

Failures are logged and the name is retried after ``retry_delay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from skiff.api.copying import deep_copy
from skiff.api.status import ApiError, not_found
from skiff.apiserver.crds.crd_registry import CLEANUP_FINALIZER, CrdRegistry
from skiff.apiserver.crds.naming import TERMINATING, calculate_names, established_status, set_condition
from skiff.apiserver.crds.versioned import CrdState, VersionedRegistry
from skiff.apiserver.served import ServedResources
from skiff.registry.admission import AdmissionChain
from skiff.registry.custom.definition import AcceptedNames, CrdResources, crd_resources
from skiff.registry.encrypted_store import storage_for
from skiff.registry.encryption import EncryptionConfig
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery
from skiff.registry.metadata import metadata_of, utc_now
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.watch_cache import WatchCache
from skiff.store.errors import StoreError
from skiff.store.protocol import Store

log = logging.getLogger(__name__)

CRD_GROUP, CRD_VERSION, CRD_PLURAL = "apiextensions.k8s.io", "v1", "customresourcedefinitions"
RETRY_DELAY_S = 1.0


@dataclass
class Serving:
    """What one CRD is served with right now."""

    uid: str
    fingerprint: tuple[object, ...]
    storage: ResourceInfo
    cache: WatchCache
    state: CrdState = field(default_factory=CrdState)
    rows: list[tuple[str, str, str]] = field(default_factory=list)


def cache_key(uid: str, storage: ResourceInfo) -> tuple[object, ...]:
    """A watch cache serves a CRD as long as these hold (its prefix, bookmark kind and scope)."""
    return (uid, storage.version, storage.kind, storage.namespaced)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _revision(obj: Obj) -> int:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0


class CrdEstablisher:
    def __init__(
        self,
        store: Store,
        served: ServedResources,
        *,
        retry_delay: float = RETRY_DELAY_S,
        clock: Callable[[], datetime] = utc_now,
        admission: AdmissionChain | None = None,
        encryption: EncryptionConfig | None = None,
    ) -> None:
        row = served.find(CRD_GROUP, CRD_VERSION, CRD_PLURAL)
        if row is None or not isinstance(row.registry, GenericRegistry):
            raise ValueError("customresourcedefinitions must be served by a GenericRegistry")
        self.store = store
        self.served = served
        #: --encryption-provider-config: custom resources it covers are stored encrypted, as built-in ones.
        self.encryption = encryption
        #: Custom resources run the same admission chain as built-in ones (namespace lifecycle, ...).
        self.admission = admission or AdmissionChain()
        self.registry: GenericRegistry = row.registry
        self.retry_delay = retry_delay
        self.clock = clock
        # The CRD resource itself deletes through the cleanup finalizer.
        served.add(row.info, CrdRegistry(self.registry))
        #: Built-in (group, plural) pairs: their storage is not a CRD's to serve or to empty.
        self._builtin = {(info.group, info.plural) for info in served.infos()}
        self._crds: dict[str, Obj] = {}
        self._serving: dict[str, Serving] = {}
        self._dirty: dict[str, None] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve every stored CRD, then follow changes in the background."""
        revision = await self._relist()
        for name in list(self._dirty):
            self._dirty.pop(name, None)
            await self._sync_or_retry(name)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch_loop(revision), name="crd-informer"),
            loop.create_task(self._work_loop(), name="crd-establisher"),
        ]

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for serving in list(self._serving.values()):
            await serving.cache.stop()
        self._serving.clear()

    # -- informer ----------------------------------------------------------------------------
    async def _relist(self) -> int:
        listed = await self.registry.list(None, ListQuery())
        fresh = {_name(item): deep_copy(item) for item in listed["items"]}
        for name in set(self._crds) | set(fresh):
            self._enqueue(name)
        self._crds = fresh
        return int(listed["metadata"]["resourceVersion"])

    async def _watch_loop(self, revision: int) -> None:
        while True:
            try:
                revision = await self._follow(revision)
            except (ApiError, StoreError) as err:
                log.warning("CRD watch failed (%s); re-listing", err)
            await asyncio.sleep(self.retry_delay)
            try:
                revision = await self._relist()
            except (ApiError, StoreError) as err:
                log.warning("CRD re-list failed (%s); retrying", err)

    async def _follow(self, revision: int) -> int:
        """Apply watch events from ``revision`` on; return the last revision seen when the stream ends."""
        q = ListQuery(resource_version=str(revision), allow_watch_bookmarks=True)
        async for line in await self.registry.watch(None, q):
            event = orjson.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return revision
            revision = max(revision, _revision(obj))
            if kind == "BOOKMARK":
                continue
            name = _name(obj)
            if kind == "DELETED":
                self._crds.pop(name, None)
                self._enqueue_group((obj.get("spec") or {}).get("group"))
            else:
                self._remember(obj)
            self._enqueue(name)
        return revision

    def _remember(self, obj: Obj) -> None:
        known = self._crds.get(_name(obj))
        if known is None or _revision(obj) >= _revision(known):
            self._crds[_name(obj)] = obj

    def _enqueue(self, name: str) -> None:
        self._dirty[name] = None
        self._wake.set()

    def _enqueue_group(self, group: object) -> None:
        """A CRD gone frees its names: others of its group may now be accepted."""
        for name, crd in self._crds.items():
            if (crd.get("spec") or {}).get("group") == group:
                self._enqueue(name)

    def _retry_later(self, name: str) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(timer)
            self._enqueue(name)

        timer = loop.call_later(self.retry_delay, fire)
        self._timers.add(timer)

    async def _work_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                name = next(iter(self._dirty))
                del self._dirty[name]
                await self._sync_or_retry(name)

    async def _sync_or_retry(self, name: str) -> None:
        try:
            again = await self.sync(name)
        except (ApiError, StoreError) as err:
            log.warning("CRD %s: %s; retrying", name, err)
            again = True
        except Exception:
            log.exception("CRD %s: sync failed; retrying", name)
            again = True
        if again:
            self._retry_later(name)

    # -- sync --------------------------------------------------------------------------------
    async def sync(self, name: str) -> bool:
        """Bring serving and status in line with the CRD; True asks for a retry later."""
        crd = self._crds.get(name)
        if crd is None:
            await self._stop_serving(name)
            return False
        if (crd.get("metadata") or {}).get("deletionTimestamp"):
            return await self._finalize(name, crd)
        others = list(self._crds.values())
        naming = calculate_names(crd, others)
        if naming.accepted:
            await self._serve(name, crd, naming.names)
        wanted = established_status(crd, naming, self.clock())
        if wanted != (crd.get("status") or {}):

            def write(current: Obj) -> None:
                current["status"] = established_status(current, calculate_names(current, others), self.clock())

            await self._write(name, write, status=True)
        return False

    async def _write(self, name: str, change: Callable[[Obj], None], *, status: bool) -> Obj:
        def mutate(current: Obj | None) -> Obj:
            if current is None:
                raise not_found(CRD_PLURAL, CRD_GROUP, name)
            out = deep_copy(current)
            metadata_of(out).pop("resourceVersion", None)
            change(out)
            return out

        written, _ = await self.registry.patch(None, name, mutate, subresource="status" if status else "")
        self._remember(written)
        return written

    # -- serving -------------------------------------------------------------------------------
    def _overlaps_builtin(self, crd: Obj) -> bool:
        """A CRD named like a built-in resource shares its storage prefix: upstream never serves it either."""
        spec = crd.get("spec") or {}
        return (spec.get("group"), (spec.get("names") or {}).get("plural")) in self._builtin

    async def _serve(self, name: str, crd: Obj, names: AcceptedNames) -> Serving | None:
        meta = crd.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if self._overlaps_builtin(crd):
            log.warning("%s overlaps a built-in resource; not served", name)
            return None
        fingerprint = (uid, meta.get("generation"), names)
        current = self._serving.get(name)
        if current is not None and current.fingerprint == fingerprint:
            return current
        resources = crd_resources(crd, names)
        if current is not None and cache_key(current.uid, current.storage) == cache_key(uid, resources.storage):
            cache = current.cache
        else:
            cache = WatchCache(self._storage(resources.storage), resources.storage)
            await cache.start()
        serving = Serving(uid, fingerprint, resources.storage, cache, current.state if current else CrdState())
        self._install(serving, resources)
        if current is not None:
            stale = set(current.rows) - set(serving.rows)
            for key in stale:
                self.served.remove(*key)
            if current.cache is not cache:
                await current.cache.stop()
        self._serving[name] = serving
        log.info("serving %s (%s)", name, ", ".join(info.group_version for info in resources.served) or "no versions")
        return serving

    def _storage(self, info: ResourceInfo) -> Store:
        return storage_for(self.store, self.encryption, info.group, info.plural)

    def _install(self, serving: Serving, resources: CrdResources) -> None:
        for info in resources.served:
            inner = GenericRegistry(
                self._storage(serving.storage), resources.writers[info.version], serving.cache, admission=self.admission
            )
            self.served.add(info, VersionedRegistry(inner, info, serving.state))
            serving.rows.append((info.group, info.version, info.plural))

    async def _stop_serving(self, name: str) -> None:
        serving = self._serving.pop(name, None)
        if serving is None:
            return
        for key in serving.rows:
            self.served.remove(*key)
        await serving.cache.stop()
        log.info("stopped serving %s", name)

    # -- the cleanup finalizer --------------------------------------------------------------------
    async def _finalize(self, name: str, crd: Obj) -> bool:
        finalizers = (crd.get("metadata") or {}).get("finalizers") or []
        if CLEANUP_FINALIZER not in finalizers:
            await self._stop_serving(name)
            return False
        names = AcceptedNames.from_dict((crd.get("status") or {}).get("acceptedNames") or {})
        serving = self._serving.get(name) or (await self._serve(name, crd, names) if names.plural else None)
        if self._overlaps_builtin(crd):
            # finalizer/crd_finalizer.go: never delete a built-in resource's objects.
            await self._set_terminating(
                name, "False", "OverlappingBuiltInResource", "instances overlap with built-in resources in storage"
            )
        elif serving is not None:
            serving.state.terminating = True
            await self._set_terminating(
                name, "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress"
            )
            storage = GenericRegistry(self._storage(serving.storage), serving.storage, serving.cache)
            try:
                await storage.delete_collection(None, ListQuery(), None)
            except ApiError as err:
                await self._set_terminating(
                    name, "True", "InstanceDeletionFailed", f"could not issue all deletes: {err}"
                )
                return True
            remaining = (await storage.list(None, ListQuery()))["items"]
            if remaining:
                log.info("%s waiting for %d items to be removed", name, len(remaining))
                return True
            await self._set_terminating(name, "False", "InstanceDeletionCompleted", "removed all instances")
        else:
            await self._set_terminating(name, "False", "NeverEstablished", "resource was never established")

        def drop_finalizer(current: Obj) -> None:
            meta = metadata_of(current)
            meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != CLEANUP_FINALIZER]

        await self._write(name, drop_finalizer, status=False)
        self._crds.pop(name, None)  # removing the last finalizer deleted it
        await self._stop_serving(name)
        return False

    async def _set_terminating(self, name: str, value: str, reason: str, message: str) -> None:
        crd = self._crds.get(name) or {}
        now = self.clock()
        probe = deep_copy(crd.get("status") or {})
        set_condition(probe, TERMINATING, value, reason, message, now)
        if probe == (crd.get("status") or {}):
            return
        await self._write(
            name,
            lambda current: set_condition(current.setdefault("status", {}), TERMINATING, value, reason, message, now),
            status=True,
        )
