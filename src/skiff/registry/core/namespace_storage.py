"""The namespace registry: two-phase deletion and the ``finalize`` subresource.

pkg/registry/core/namespace/storage, as upstream:

* The first DELETE of a namespace does not remove it: it sets
  ``deletionTimestamp`` and ``status.phase: Terminating`` (and the GC
  finalizers the propagation policy asks for) and answers 200 with the
  namespace.  From then on NamespaceLifecycle refuses new content in it.
* The namespace controller (issue C) empties the namespace, removes
  ``kubernetes`` from ``spec.finalizers`` with ``PUT .../finalize`` and
  deletes again.  A DELETE while ``spec.finalizers`` is not empty is 409
  ``The system is ensuring all content is removed from this namespace...``;
  once empty the namespace is deleted like any object (metadata finalizers
  still hold it).
* ``finalize`` writes only ``spec.finalizers`` (upstream's FinalizeStrategy:
  status kept, the rest of the object as given but validated as an update).

Until the namespace controller exists nothing finalizes a namespace, so
``kubectl delete namespace x`` (which waits for the object to go) waits until
something calls ``finalize``.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.api.copying import deep_copy
from skiff.api.status import conflict
from skiff.registry import deletion
from skiff.registry.admission.chain import Operation
from skiff.registry.core.namespace import NamespaceStrategy
from skiff.registry.generic import GenericRegistry
from skiff.registry.metadata import (
    decode,
    encode,
    format_time,
    metadata_of,
    same_object,
    set_resource_version,
)
from skiff.registry.resource import Obj
from skiff.store.errors import Conflict, KeyNotFound

FINALIZE = "finalize"
PURGE_PENDING = (
    "The system is ensuring all content is removed from this namespace.  "
    "Upon completion, this namespace will automatically be purged by the system."
)


class NamespaceFinalizeStrategy(NamespaceStrategy):
    """namespaceFinalizeStrategy: an update through ``finalize`` changes spec.finalizers, never status."""

    allow_create_on_update = False

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)


class NamespaceRegistry(GenericRegistry):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subresource_registries = {FINALIZE: self.sibling(NamespaceFinalizeStrategy(self.info.namespaced))}

    async def delete(
        self, namespace: str | None, name: str, options: Obj | None, *, dry_run: bool = False
    ) -> tuple[Obj, bool]:
        opts = deletion.parse_delete_options(options)
        attrs = self._attrs(Operation.DELETE, None, None, name=name, namespace="", dry_run=dry_run)
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)
        key = self._key(None, name)
        for _ in range(self.max_attempts):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            current = decode(kv.value, kv.mod_revision)
            deletion.check_preconditions(current, opts, self.info)
            if metadata_of(current).get("deletionTimestamp"):
                if (current.get("spec") or {}).get("finalizers"):
                    raise conflict(self.info.plural, self.info.group, name, PURGE_PENDING)
                return await self._delete_object(None, name, opts, dry_run)
            work = self._start_termination(current, opts)
            if dry_run or same_object(work, current):
                return work, False
            try:
                revision = await self.store.update(key, encode(work), kv.mod_revision)
            except (Conflict, KeyNotFound):
                continue
            set_resource_version(work, revision)
            return work, False
        raise self._conflict(name)

    def _start_termination(self, current: Obj, opts: deletion.DeleteOptions) -> Obj:
        work = deep_copy(current)
        meta = metadata_of(work)
        meta["deletionTimestamp"] = format_time(self.clock())
        work.setdefault("status", {})["phase"] = "Terminating"
        changed, finalizers = deletion.gc_finalizers(work, opts)
        if changed:
            if finalizers:
                meta["finalizers"] = finalizers
            else:
                meta.pop("finalizers", None)
        return work
