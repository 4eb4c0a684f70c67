"""The generic registry: one resource's storage semantics over the Store.

The HTTP layer calls, for one ``ResourceInfo`` (Kubernetes' generic
``registry.Store``, k8s.io/apiserver pkg/registry/generic/registry)::

    GenericRegistry(store, info, cache, *, clock=utc_now, uid=new_uid)
    await create(namespace, obj, *, dry_run=False) -> Obj                   # the created object (201)
    await get(namespace, name) -> Obj
    await list(namespace, q: ListQuery) -> Obj                              # the <Kind>List
    await update(namespace, name, obj, *, subresource="", dry_run=False) -> (Obj, created)
    await patch(namespace, name, mutate, *, subresource="", dry_run=False, create_if_missing=False) -> (Obj, created)
    await delete(namespace, name, options, *, dry_run=False) -> (Obj, deleted_now)
    await delete_collection(namespace, q, options, *, dry_run=False) -> Obj  # <Kind>List of what was deleted
    await watch(namespace, q) -> AsyncIterator[bytes]                       # one JSON event line per item

``namespace`` is the URL's (None or "" for cluster-scoped resources and for
all-namespaces lists).  Every failure is an ``ApiError``.  Objects returned
by ``list`` are the watch cache's own dicts: read them, never mutate them.

Semantics, all as upstream:

* Write sequence: system metadata (``metadata``) → strategy.prepare →
  strategy.default → field ownership (``managed_fields.record_write``:
  the request's managedFields entry) → mutating admission → strategy.validate (+ generic
  ObjectMeta validation) → write hooks' begin (allocations) → validating
  admission → compare-and-swap write → hooks' finish → error translation
  (KeyExists → 409 AlreadyExists, lost race → retry or 409 Conflict).
  Admission (``registry.admission``) also runs before a delete, and
  (``admit_subresource_create``) on the body of a create served elsewhere
  (pods/eviction, serviceaccounts/token); write hooks
  (``registry.write_hooks``) hear of every real delete.
* ``resourceVersion`` is the key's mod revision, never stored.  An update
  whose body carries a resourceVersion must match it (409 otherwise); without
  one it is unconditional.  An update that changes nothing is not written.
* ``patch`` is a read-mutate-compare-and-swap loop: a lost race re-reads and
  re-applies ``mutate`` (up to ``max_attempts``); a resourceVersion the patch
  pins that no longer matches is a 409.  Update and patch read from the watch
  cache first (see ``_guaranteed_update``).
* Deletion rules (finalizers, graceful deletion, preconditions): ``deletion``.
  An update that removes the last finalizer of an object being deleted
  deletes it.  Delete answers with the object (last state, last
  resourceVersion), as stores with ReturnDeletedObject do.
* Lists and watches come from the watch cache (``apiserver.watch_cache``):
  resourceVersion unset → consistent (the cache first catches up with the
  store's current revision), "0" → whatever the cache has, N → at least N.
  ``resourceVersionMatch=Exact`` and later pages of a paginated list are read
  from the Store at the snapshot's revision (410 once compacted).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from skiff.api.copying import deep_copy
from skiff.api.name_rules import name_is_path_segment
from skiff.api.status import MODIFIED, ApiError, Cause, already_exists, bad_request, conflict, invalid, not_found
from skiff.registry import deletion, managed_fields, validation
from skiff.registry.admission.chain import AdmissionChain, Attributes, Operation
from skiff.registry.encrypted_store import EncryptedStore, is_stale
from skiff.registry.keys import list_prefix, object_key
from skiff.registry.list_reads import StoreLists, page_from_cache
from skiff.registry.listing import (
    ListQuery,
    Selection,
    compile_selection,
    decode_continue,
    list_envelope,
    parse_revision,
    validate_list_query,
)
from skiff.registry.metadata import (
    bump_generation,
    carry_update_metadata,
    decode,
    encode,
    ensure_namespace,
    fill_create_metadata,
    metadata_of,
    random_suffix,
    resource_version_of,
    resource_version_set_on_create,
    same_object,
    set_resource_version,
    set_type_meta,
    utc_now,
)
from skiff.registry.request_user import current_user
from skiff.registry.resource import Obj, ResourceInfo, Strategy
from skiff.registry.watch_cache import WatchCache, too_large_resource_version
from skiff.registry.watch_events import error_line
from skiff.registry.write_hooks import NoHooks, WriteHooks
from skiff.store.errors import Conflict, KeyExists, KeyNotFound
from skiff.store.protocol import Store
from skiff.store.types import KeyValue

#: Attempts of a read-modify-write before a lost race is reported as 409.
MAX_ATTEMPTS = 5
#: Upstream's maxNameGenerationCreateAttempts.
NAME_GENERATION_ATTEMPTS = 8

Mutate = Callable[[Obj | None], Obj]


@dataclass(slots=True)
class _State:
    """The object an update attempt starts from: as the API shows it, its mod revision, whether it
    must be rewritten even unchanged (stored under an old encryption key), and whether it came from the
    store (a read, or a lost race's answer) rather than the watch cache."""

    obj: Obj
    mod_revision: int
    rewrite: bool = False
    fresh: bool = True


def new_uid() -> str:
    return str(uuid.uuid4())


def validate_create_metadata(obj: Obj, namespaced: bool) -> list[Cause]:
    """The generic ObjectMeta validation BeforeCreate runs after the strategy's (path-segment names)."""
    meta = obj.get("metadata")
    return validation.validate_object_meta(meta if isinstance(meta, dict) else {}, namespaced, name_is_path_segment)


def validate_update_metadata(new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
    """BeforeUpdate's validateCommonFields: ObjectMeta rules plus what an update may not change."""
    causes = validate_create_metadata(new, namespaced)
    return causes + validation.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})


#: Subresource writes whose new object the server builds itself (pods/binding sets spec.nodeName
#: and the PodScheduled condition): the strategy's update preparation and update rules do not
#: apply, as upstream's BindingREST writes through storage directly.
SERVER_BUILT_SUBRESOURCES = frozenset({"binding"})


class GenericRegistry:
    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        cache: WatchCache,
        *,
        clock: Callable[[], datetime] = utc_now,
        uid: Callable[[], str] = new_uid,
        name_suffix: Callable[[], str] = random_suffix,
        max_attempts: int = MAX_ATTEMPTS,
        admission: AdmissionChain | None = None,
        hooks: WriteHooks | None = None,
    ) -> None:
        self.store = store
        self.admission = admission or AdmissionChain()
        self.hooks: WriteHooks = hooks or NoHooks()
        self.info = info
        self.cache = cache
        self.clock = clock
        self.uid = uid
        self.name_suffix = name_suffix
        self.max_attempts = max_attempts
        self._reads = StoreLists(store, info, cache)
        #: Subresources written through a registry of their own: upstream gives each its own store with its
        #: own strategy over the same key (namespaces/finalize, certificatesigningrequests/approval).
        self.subresource_registries: dict[str, GenericRegistry] = {}

    def sibling(self, strategy: Strategy, kind: type[GenericRegistry] | None = None) -> GenericRegistry:
        """A registry of ``kind`` over the same store, cache and admission, with another strategy."""
        return (kind or GenericRegistry)(
            self.store,
            replace(self.info, strategy=strategy),
            self.cache,
            clock=self.clock,
            uid=self.uid,
            max_attempts=self.max_attempts,
            admission=self.admission,
            hooks=self.hooks,
        )

    # -- helpers ------------------------------------------------------------------------
    def _key(self, namespace: str | None, name: str) -> bytes:
        return object_key(self.info, namespace, name).encode()

    def _not_found(self, name: str) -> ApiError:
        return not_found(self.info.plural, self.info.group, name)

    def _conflict(self, name: str) -> ApiError:
        return conflict(self.info.plural, self.info.group, name, MODIFIED)

    def _namespace(self, namespace: str | None) -> str | None:
        return namespace if self.info.namespaced else None

    def _attrs(
        self, op: Operation, obj: Obj | None, old: Obj | None, *, name: str = "", subresource: str = "",
        namespace: str | None = None, dry_run: bool = False,
    ) -> Attributes:  # fmt: skip
        meta = (obj or old or {}).get("metadata") or {}
        return Attributes(
            op,
            self.info,
            str((namespace if namespace is not None else meta.get("namespace")) or "") if self.info.namespaced else "",
            name or str(meta.get("name") or ""),
            obj,
            old,
            subresource,
            dry_run,
            current_user(),
        )

    # -- create ---------------------------------------------------------------------------
    async def create(self, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be an object")
        rv = resource_version_of(obj)
        if rv and rv.isdigit() and int(rv) != 0:
            raise resource_version_set_on_create()
        generated = bool((obj.get("metadata") or {}).get("generateName")) and not (obj.get("metadata") or {}).get(
            "name"
        )
        attempts = NAME_GENERATION_ATTEMPTS if generated else 1
        for attempt in range(attempts):
            new = await self._prepare_create(namespace, deep_copy(obj), dry_run)
            try:
                return await self._write_new(new, dry_run)
            except ApiError as err:
                if err.code != 409 or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _prepare_create(self, namespace: str | None, new: Obj, dry_run: bool) -> Obj:
        set_type_meta(new, self.info)
        fill_create_metadata(new, self.info, self.clock(), self.uid(), self.name_suffix)
        ensure_namespace(new, self.info, namespace)
        metadata_of(new).pop("resourceVersion", None)
        strategy = self.info.strategy
        strategy.prepare_for_create(new)
        strategy.default(new)
        managed_fields.record_write(self.info, None, new, self.clock())
        await self.admission.admit(self._attrs(Operation.CREATE, new, None, dry_run=dry_run))
        causes = strategy.validate(new)
        if not causes:
            causes = validate_create_metadata(new, self.info.namespaced)
        if causes:
            raise invalid(self.info.kind, self.info.group, str(metadata_of(new).get("name", "")), causes)
        return new

    async def _write_new(self, new: Obj, dry_run: bool) -> Obj:
        meta = metadata_of(new)
        name = str(meta["name"])
        finish = await self.hooks.begin_create(new, dry_run)
        written = False
        try:
            await self.admission.validate(self._attrs(Operation.CREATE, new, None, dry_run=dry_run))
            if dry_run:
                return new
            key = self._key(meta.get("namespace"), name)
            try:
                revision = await self.store.create(key, encode(new))
            except KeyExists:
                raise already_exists(self.info.plural, self.info.group, name) from None
            written = True
        finally:
            await finish(written)
        set_resource_version(new, revision)
        return new

    # -- get ------------------------------------------------------------------------------------
    async def get(self, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(self._key(self._namespace(namespace), name))
        if kv is None:
            raise self._not_found(name)
        return decode(kv.value, kv.mod_revision)

    def cached_get(self, namespace: str | None, name: str) -> Obj | None:
        """The watch cache's copy (an informer's view, maybe a moment old); None when it has none."""
        cached = self.cache.cached(self._key(self._namespace(namespace), name).decode())
        return None if cached is None else cached.obj

    def cached_list(self, namespace: str | None) -> list[Obj] | None:
        """The watch cache's objects (an informer lister's view); None until the cache is synced."""
        if not self.cache.ready:
            return None
        return [cached.obj for cached in self.cache.snapshot(namespace)[1]]

    # -- update and patch ------------------------------------------------------------------------
    async def update(
        self, namespace: str | None, name: str, obj: Obj, *, subresource: str = "", dry_run: bool = False
    ) -> tuple[Obj, bool]:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be an object")
        given = str((obj.get("metadata") or {}).get("name") or "")
        if given != name:
            raise bad_request(f"the name of the object ({given}) does not match the name on the URL ({name})")
        sibling = self.subresource_registries.get(subresource)
        if sibling is not None:
            return await sibling.update(namespace, name, obj, subresource=subresource, dry_run=dry_run)
        allow_create = self.info.strategy.allow_create_on_update and not subresource
        return await self._guaranteed_update(
            namespace, name, lambda _current: deep_copy(obj), subresource, dry_run, allow_create
        )

    async def patch(
        self,
        namespace: str | None,
        name: str,
        mutate: Mutate,
        *,
        subresource: str = "",
        dry_run: bool = False,
        create_if_missing: bool = False,
    ) -> tuple[Obj, bool]:
        sibling = self.subresource_registries.get(subresource)
        if sibling is not None:
            return await sibling.patch(namespace, name, mutate, subresource=subresource, dry_run=dry_run)
        return await self._guaranteed_update(namespace, name, mutate, subresource, dry_run, create_if_missing)

    async def _guaranteed_update(
        self, namespace: str | None, name: str, produce: Mutate, subresource: str, dry_run: bool, allow_create: bool
    ) -> tuple[Obj, bool]:
        """storage.GuaranteedUpdate: read, build the new object, compare-and-swap; re-run on a lost race.

        The first attempt starts from the watch cache's copy when it has one (upstream's cacher hands its
        object down as ``cachedExistingObject``): the compare-and-swap on its mod revision catches a copy
        that is a moment old, and the lost race's answer is the current object, so the usual update costs
        no store read.  A stale copy is never the reason for an answer: an error or a no-op found on it is
        checked again on the object read from the store, as upstream's etcd3 store does.
        """
        namespace = self._namespace(namespace)
        key = self._key(namespace, name)
        state = None if dry_run else self._cached_state(key)
        for _ in range(self.max_attempts):
            if state is None:
                kv = await self.store.get(key)
                if kv is None:
                    if not allow_create:
                        raise self._not_found(name)
                    created = await self._prepare_create(namespace, self._named(produce(None), name), dry_run)
                    try:
                        return await self._write_new(created, dry_run), True
                    except ApiError as err:
                        if err.code == 409:
                            continue  # created meanwhile: update it instead
                        raise
                state = _State(decode(kv.value, kv.mod_revision), kv.mod_revision, is_stale(self.store, kv))
            current, mod_revision = state.obj, state.mod_revision
            try:
                new = produce(deep_copy(current))
                if not isinstance(new, dict):
                    raise bad_request("the body of the request must be an object")
                pinned = resource_version_of(new)
                if pinned and pinned != str(mod_revision):
                    raise self._conflict(name)
                if not pinned:
                    set_resource_version(new, mod_revision)  # unconditional: as if the client had read it
                self._prepare_update(namespace, name, new, current, subresource)
                attrs = self._attrs(Operation.UPDATE, new, current, subresource=subresource, dry_run=dry_run)
                await self.admission.admit(attrs)
                self._validate_update(name, new, current, subresource)
            except ApiError:
                if state.fresh:
                    raise
                state = None  # judged on the cache's copy: judge again on the stored object
                continue
            if deletion.should_delete_during_update(new, current):
                await self.admission.validate(attrs)
                if dry_run:
                    return new, False
                try:
                    await self.store.delete(key, mod_revision)
                except (Conflict, KeyNotFound):
                    state = None
                    continue
                await self.hooks.after_delete(current)
                return new, False
            if same_object(new, current) and not state.rewrite:
                if not state.fresh:
                    state = None  # unchanged from the cache's copy, maybe not from the stored object
                    continue
                return current, False  # unchanged, and stored under the current encryption key
            finish = await self.hooks.begin_update(new, current, dry_run)
            written = False
            try:
                await self.admission.validate(attrs)
                if dry_run:
                    set_resource_version(new, mod_revision)
                    return new, False
                try:
                    revision = await self.store.update(key, encode(new), mod_revision)
                except (Conflict, KeyNotFound) as lost:
                    state = self._winner(lost)
                    continue
                written = True
            finally:
                await finish(written)
            set_resource_version(new, revision)
            return new, False
        raise self._conflict(name)

    def _cached_state(self, key: bytes) -> _State | None:
        """The watch cache's copy of ``key`` to start an update from; None to read the store.

        Not for encrypted resources: whether an unchanged object must still be rewritten under the current
        key is known only from the stored bytes.
        """
        if isinstance(self.store, EncryptedStore):
            return None
        cached = self.cache.cached(key.decode())
        return None if cached is None else _State(cached.obj, cached.revision, fresh=False)

    def _winner(self, lost: Conflict | KeyNotFound) -> _State | None:
        """What won a lost compare-and-swap (the txn's failure branch read it), or None to read the store."""
        kv = lost.current if isinstance(lost, Conflict) else None
        if not isinstance(kv, KeyValue) or isinstance(self.store, EncryptedStore):
            return None  # deleted meanwhile, or sealed bytes
        return _State(decode(kv.value, kv.mod_revision), kv.mod_revision)

    @staticmethod
    def _named(obj: Obj, name: str) -> Obj:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be an object")
        meta = metadata_of(obj)
        if not meta.get("name"):
            meta["name"] = name
        elif meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        return obj

    def _prepare_update(self, namespace: str | None, name: str, new: Obj, old: Obj, subresource: str) -> None:
        """rest.BeforeUpdate's first half: namespace, carried metadata, strategy prepare and defaults."""
        set_type_meta(new, self.info)
        ensure_namespace(new, self.info, namespace)
        meta = metadata_of(new)
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        old_meta = old.get("metadata") or {}
        uid = meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            raise conflict(
                self.info.plural,
                self.info.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old_meta.get('uid', '')}",
            )
        carry_update_metadata(new, old)
        strategy = self.info.strategy
        if subresource == "status":
            strategy.prepare_for_status_update(new, old)
        elif subresource not in SERVER_BUILT_SUBRESOURCES:
            strategy.prepare_for_update(new, old)
        strategy.default(new)
        managed_fields.record_write(self.info, old, new, self.clock())

    def _validate_update(self, name: str, new: Obj, old: Obj, subresource: str) -> None:
        """rest.BeforeUpdate's second half (after mutating admission): generation and validation."""
        strategy = self.info.strategy
        if metadata_of(new).get("generation") == (old.get("metadata") or {}).get("generation") and (
            subresource != "status"
        ):
            bump_generation(new, old, self.info)
        causes = strategy.validate(new)
        if subresource not in SERVER_BUILT_SUBRESOURCES:
            causes += strategy.validate_update(new, old)
        if not causes:
            causes = validate_update_metadata(new, old, self.info.namespaced)
        if causes:
            raise invalid(self.info.kind, self.info.group, name, causes)

    # -- subresource creates ----------------------------------------------------------------
    async def admit_subresource_create(
        self, namespace: str | None, name: str, body: Obj, subresource: str, *, dry_run: bool = False
    ) -> None:
        """Admission of a create served outside this registry's write sequence (pods/eviction,
        serviceaccounts/token): ``body`` is the request's object, as upstream's create handler admits it
        before the subresource's storage runs."""
        attrs = self._attrs(
            Operation.CREATE, body, None, name=name, subresource=subresource, namespace=namespace or "",
            dry_run=dry_run,
        )  # fmt: skip
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)

    # -- delete ------------------------------------------------------------------------------
    async def delete(
        self, namespace: str | None, name: str, options: Obj | None, *, dry_run: bool = False
    ) -> tuple[Obj, bool]:
        opts = deletion.parse_delete_options(options)
        attrs = self._attrs(Operation.DELETE, None, None, name=name, namespace=namespace or "", dry_run=dry_run)
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)
        return await self._delete_object(namespace, name, opts, dry_run)

    async def _delete_object(
        self, namespace: str | None, name: str, opts: deletion.DeleteOptions, dry_run: bool
    ) -> tuple[Obj, bool]:
        """Store.Delete after admission: preconditions, graceful deletion, finalizers."""
        key = self._key(self._namespace(namespace), name)
        for _ in range(self.max_attempts):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            current = decode(kv.value, kv.mod_revision)
            deletion.check_preconditions(current, opts, self.info)
            work = decode(kv.value, kv.mod_revision)  # a second decode is a copy at half a round trip's cost
            now = self.clock()
            outcome = deletion.before_delete(work, opts, self.info, now)
            if outcome.pending:
                return current, False
            changed, finalizers = deletion.gc_finalizers(work, opts)
            if changed:
                if finalizers:
                    metadata_of(work)["finalizers"] = finalizers
                else:
                    metadata_of(work).pop("finalizers", None)
            keep = bool(finalizers) or (outcome.graceful and outcome.period > 0)
            if keep:
                if not outcome.graceful:
                    deletion.mark_as_deleting(work, now)
                if same_object(work, current):
                    return current, False
                if dry_run:
                    return work, False
                try:
                    revision = await self.store.update(key, encode(work), kv.mod_revision)
                except (Conflict, KeyNotFound):
                    continue
                set_resource_version(work, revision)
                return work, False
            # Delete now.  (A graceful delete with period 0 is not written first: it goes at once.)
            if dry_run:
                return work, True
            try:
                await self.store.delete(key, kv.mod_revision)
            except (Conflict, KeyNotFound):
                continue
            await self.hooks.after_delete(current)
            return work, True
        raise self._conflict(name)

    async def delete_collection(
        self, namespace: str | None, q: ListQuery, options: Obj | None, *, dry_run: bool = False
    ) -> Obj:
        deletion.parse_delete_options(options)  # reject bad options before touching anything
        listed = await self.list(namespace, ListQuery(label_selector=q.label_selector, field_selector=q.field_selector))
        deleted: list[Obj] = []
        for item in listed["items"]:
            meta = item.get("metadata") or {}
            try:
                obj, _ = await self.delete(meta.get("namespace"), str(meta.get("name", "")), options, dry_run=dry_run)
            except ApiError as err:
                if err.code == 404:
                    continue  # deleted meanwhile
                raise
            deleted.append(obj)
        return list_envelope(self.info, deleted, int(listed["metadata"]["resourceVersion"]))

    # -- list ----------------------------------------------------------------------------------
    async def list(self, namespace: str | None, q: ListQuery) -> Obj:
        validate_list_query(q, watch=False)
        selection = compile_selection(q, self.info)
        ns = self._scope(namespace, selection)
        prefix = list_prefix(self.info, ns)
        if q.continue_token:
            revision, start = decode_continue(q.continue_token, prefix)
            if self.cache.ready and self.cache.revision == revision:
                return page_from_cache(self.cache, self.info, ns, selection, q.limit, prefix, start)
            return await self._reads.list_from_store(prefix, selection, q.limit, revision, start, continuing=True)
        if q.resource_version_match == "Exact":
            return await self._reads.list_from_store(
                prefix, selection, q.limit, parse_revision(q.resource_version), prefix
            )
        await self.cache.wait_ready()
        if not q.resource_version:
            if await self.cache.consistent_revision() is None:
                return await self._reads.list_from_store(prefix, selection, q.limit, 0, prefix)
        elif q.resource_version != "0":
            wanted = parse_revision(q.resource_version)
            if not await self.cache.wait_for_revision(wanted):
                raise too_large_resource_version(wanted, self.cache.revision)
        return page_from_cache(self.cache, self.info, ns, selection, q.limit, prefix, "")

    def _scope(self, namespace: str | None, selection: Selection) -> str | None:
        """The namespace a request covers: the URL's, or one a metadata.namespace= selector pins."""
        if not self.info.namespaced:
            return None
        return namespace or selection.namespace or None

    # -- watch -----------------------------------------------------------------------------------
    async def watch(self, namespace: str | None, q: ListQuery, *, coalesce: bool = False) -> AsyncIterator[bytes]:
        validate_list_query(q, watch=True)
        selection = compile_selection(q, self.info)
        ns = self._scope(namespace, selection)
        await self.cache.wait_ready()
        timeout = q.timeout_seconds or None
        rv = q.resource_version
        after: int | None = None
        if rv and rv != "0":
            wanted = parse_revision(rv)
            if not await self.cache.wait_for_revision(wanted):
                return _single_event(error_line(too_large_resource_version(wanted, self.cache.revision).to_dict()))
            after = wanted
        elif not rv:
            await self.cache.consistent_revision()
        initial_end = False
        if q.send_initial_events:
            after = None
            initial_end = q.allow_watch_bookmarks
        elif q.send_initial_events is False and after is None:
            after = self.cache.revision  # watch-list without initial events: changes from now on
        return self.cache.watch(
            ns,
            selection,
            after=after,
            initial_events_end=initial_end,
            bookmarks=q.allow_watch_bookmarks,
            timeout=timeout,
            coalesce=coalesce,
        )


async def _single_event(line: bytes) -> AsyncIterator[bytes]:
    yield line
