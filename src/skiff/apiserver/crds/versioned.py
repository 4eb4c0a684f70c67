"""The registry of one served CRD version: the storage registry seen through that version.

Objects are stored once, under the CRD's storage version
(``/registry/<group>/<plural>/...``, apiVersion ``<group>/<storage>``); every
served version has its own ``GenericRegistry`` (its own schema, defaults and
columns) writing the storage apiVersion, all over ONE watch cache.  This
wrapper is conversion ``None`` as upstream does it: objects going out get the
served ``apiVersion`` (and the storage decoder's pruning and defaulting, when
the version's schema has defaults); a patch sees the object in the served
version.  Lists, single objects and watch events alike.

While the CRD is terminating, creates are refused (405, "create not allowed
while custom resource definition is terminating"), as upstream's
customresource_handler does.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from skiff.api.status import ApiError, Details
from skiff.registry.custom.strategy import CustomResourceStrategy
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery
from skiff.registry.resource import Obj, ResourceInfo

Mutate = Callable[[Obj | None], Obj]


@dataclass
class CrdState:
    """Shared by every version of one CRD: flipped when the CRD starts terminating."""

    terminating: bool = False


def terminating_error(info: ResourceInfo) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating",
        Details(group=info.group, kind=info.plural),
    )


class VersionedRegistry:
    """A ResourceRegistry for one served version, over a GenericRegistry writing the storage version."""

    def __init__(self, inner: GenericRegistry, info: ResourceInfo, state: CrdState) -> None:
        self.inner = inner
        self.info = info
        self.state = state
        strategy = info.strategy
        self._read_defaults = isinstance(strategy, CustomResourceStrategy) and strategy.defaults_on_read
        self._converts = inner.info.version != info.version or self._read_defaults

    # -- conversion --------------------------------------------------------------------------
    def _out(self, obj: Obj) -> Obj:
        """``obj`` as this version serves it (a copy when anything changes; cache dicts stay untouched)."""
        if not self._converts and obj.get("apiVersion") == self.info.group_version:
            return obj
        out = copy.deepcopy(obj) if self._read_defaults else dict(obj)
        out["apiVersion"] = self.info.group_version
        if self._read_defaults:
            strategy = self.info.strategy
            assert isinstance(strategy, CustomResourceStrategy)
            strategy.read(out)
        return out

    def _out_list(self, result: Obj) -> Obj:
        out = dict(result)
        out["apiVersion"] = self.info.group_version
        out["items"] = [self._out(item) for item in result.get("items") or []]
        return out

    def _in(self, mutate: Mutate) -> Mutate:
        return lambda current: mutate(None if current is None else self._out(current))

    # -- ResourceRegistry ----------------------------------------------------------------------
    async def create(self, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj:
        if self.state.terminating:
            raise terminating_error(self.info)
        return self._out(await self.inner.create(namespace, obj, dry_run=dry_run))

    async def get(self, namespace: str | None, name: str) -> Obj:
        return self._out(await self.inner.get(namespace, name))

    async def list(self, namespace: str | None, q: ListQuery) -> Obj:
        return self._out_list(await self.inner.list(namespace, q))

    async def update(
        self, namespace: str | None, name: str, obj: Obj, *, subresource: str = "", dry_run: bool = False
    ) -> tuple[Obj, bool]:
        result, created = await self.inner.update(namespace, name, obj, subresource=subresource, dry_run=dry_run)
        return self._out(result), created

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
        create_if_missing = create_if_missing and not self.state.terminating
        result, created = await self.inner.patch(
            namespace,
            name,
            self._in(mutate),
            subresource=subresource,
            dry_run=dry_run,
            create_if_missing=create_if_missing,
        )
        return self._out(result), created

    async def delete(
        self, namespace: str | None, name: str, options: Obj | None, *, dry_run: bool = False
    ) -> tuple[Obj, bool]:
        obj, deleted = await self.inner.delete(namespace, name, options, dry_run=dry_run)
        return self._out(obj), deleted

    async def delete_collection(
        self, namespace: str | None, q: ListQuery, options: Obj | None, *, dry_run: bool = False
    ) -> Obj:
        return self._out_list(await self.inner.delete_collection(namespace, q, options, dry_run=dry_run))

    async def watch(self, namespace: str | None, q: ListQuery, *, coalesce: bool = False) -> AsyncIterator[bytes]:
        if not self._converts and self.inner.info.version == self.info.version:
            return await self.inner.watch(namespace, q, coalesce=coalesce)
        return self._convert_lines(await self.inner.watch(namespace, q))  # converted line by line

    async def _convert_lines(self, lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for line in lines:
            event = orjson.loads(line)
            obj = event.get("object")
            if isinstance(obj, dict) and event.get("type") in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                event["object"] = self._out(obj)
                line = orjson.dumps(event) + b"\n"
            yield line
