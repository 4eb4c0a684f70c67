"""The registry of ``customresourcedefinitions``: deletion goes through the cleanup finalizer.

As apiextensions-apiserver's CRD REST ``Delete``: the first delete of a CRD
(one without ``deletionTimestamp``) checks the preconditions, adds the
``customresourcecleanup.apiextensions.k8s.io`` finalizer, lets the generic
delete mark the CRD as deleting (``deletionTimestamp``; it has a finalizer
now), sets the condition Terminating=True (``InstanceDeletionPending``) and
answers with the CRD, which stays until the establisher has deleted every
custom resource and removed the finalizer.  (Upstream does it in one write;
here metadata and status are separate writes because a status write may not
touch metadata.)  A delete of a CRD already terminating is the generic one;
``deletecollection`` deletes each CRD this way.  Everything else is the
generic registry's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from skiff.api.copying import deep_copy
from skiff.api.status import ApiError, not_found
from skiff.apiserver.crds.naming import TERMINATING, set_condition
from skiff.registry import deletion
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery, list_envelope
from skiff.registry.metadata import format_time, metadata_of
from skiff.registry.resource import Obj

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

Mutate = Callable[[Obj | None], Obj]


#: The Terminating condition the first delete sets (reason, message).
PENDING = (
    "InstanceDeletionPending",
    "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
)


def mark_for_deletion(crd: Obj, now: datetime) -> Obj:
    """A copy of ``crd`` being deleted: deletionTimestamp, the cleanup finalizer, Terminating=True."""
    out = deep_copy(crd)
    meta = metadata_of(out)
    meta.setdefault("deletionTimestamp", format_time(now))
    meta.setdefault("deletionGracePeriodSeconds", 0)
    finalizers = [str(f) for f in meta.get("finalizers") or []]
    if CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)
    meta["finalizers"] = finalizers
    set_condition(out.setdefault("status", {}), TERMINATING, "True", *PENDING, now)
    return out


class CrdRegistry:
    def __init__(self, inner: GenericRegistry) -> None:
        self.inner = inner
        self.info = inner.info

    async def create(self, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        return await self.inner.create(namespace, obj, dry_run=dry_run)

    async def get(self, namespace: str | None, name: str) -> Obj:
        return await self.inner.get(namespace, name)

    async def list(self, namespace: str | None, q: ListQuery) -> Obj:
        return await self.inner.list(namespace, q)

    async def update(
        self, namespace: str | None, name: str, obj: Obj, *, subresource: str = "", dry_run: bool = False
    ) -> tuple[Obj, bool]:
        return await self.inner.update(namespace, name, obj, subresource=subresource, dry_run=dry_run)

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
        return await self.inner.patch(
            namespace, name, mutate, subresource=subresource, dry_run=dry_run, create_if_missing=create_if_missing
        )

    async def watch(self, namespace: str | None, q: ListQuery, *, coalesce: bool = False) -> AsyncIterator[bytes]:
        return await self.inner.watch(namespace, q, coalesce=coalesce)

    async def delete(
        self, namespace: str | None, name: str, options: Obj | None, *, dry_run: bool = False
    ) -> tuple[Obj, bool]:
        opts = deletion.parse_delete_options(options)
        current = await self.inner.get(None, name)
        if (current.get("metadata") or {}).get("deletionTimestamp"):
            return await self.inner.delete(None, name, options, dry_run=dry_run)
        deletion.check_preconditions(current, opts, self.info)
        if dry_run:
            return mark_for_deletion(current, self.inner.clock()), False

        def add_finalizer(stored: Obj | None) -> Obj:
            if stored is None:
                raise not_found(self.info.plural, self.info.group, name)
            deletion.check_preconditions(stored, opts, self.info)
            out = deep_copy(stored)
            meta = metadata_of(out)
            finalizers = [str(f) for f in meta.get("finalizers") or []]
            if CLEANUP_FINALIZER not in finalizers:
                meta["finalizers"] = [*finalizers, CLEANUP_FINALIZER]
            meta.pop("resourceVersion", None)
            return out

        def set_terminating(stored: Obj | None) -> Obj:
            if stored is None:
                raise not_found(self.info.plural, self.info.group, name)
            out = deep_copy(stored)
            set_condition(out.setdefault("status", {}), TERMINATING, "True", *PENDING, self.inner.clock())
            metadata_of(out).pop("resourceVersion", None)
            return out

        # The finalizer (under the caller's preconditions), then the generic delete, which marks an
        # object with finalizers as deleting, then the condition (a status write touches only status).
        await self.inner.patch(None, name, add_finalizer)
        rest = dict(options or {})
        rest.pop("preconditions", None)
        obj, deleted = await self.inner.delete(None, name, rest)
        if deleted:
            return obj, True
        try:
            marked, _ = await self.inner.patch(None, name, set_terminating, subresource="status")
        except ApiError as err:
            if err.code != 404:
                raise
            # The establisher finished the cleanup (e.g. nothing to delete) before we marked it.
            return obj, True
        return marked, False

    async def delete_collection(
        self, namespace: str | None, q: ListQuery, options: Obj | None, *, dry_run: bool = False
    ) -> Obj:
        deletion.parse_delete_options(options)
        listed = await self.inner.list(
            None, ListQuery(label_selector=q.label_selector, field_selector=q.field_selector)
        )
        deleted: list[Obj] = []
        for item in listed["items"]:
            try:
                obj, _ = await self.delete(
                    None, str((item.get("metadata") or {}).get("name", "")), options, dry_run=dry_run
                )
            except ApiError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(obj)
        return list_envelope(self.info, deleted, int(listed["metadata"]["resourceVersion"]))
