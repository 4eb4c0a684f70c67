"""The resources this API server serves right now: table rows paired with their registries.

Built-in rows are added at start; CRDs (later) add and remove rows at run
time, so discovery and OpenAPI documents are derived from ``generation``-keyed
snapshots rather than computed once.  ``ResourceRegistry`` is the part of
``skiff.registry.generic.GenericRegistry`` the HTTP layer calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from skiff.registry.listing import ListQuery
from skiff.registry.resource import Obj, ResourceInfo


class ResourceRegistry(Protocol):
    """What handlers need from a registry (GenericRegistry's methods; all raise ApiError)."""

    async def create(self, namespace: str | None, obj: Obj, *, dry_run: bool = False) -> Obj: ...

    async def get(self, namespace: str | None, name: str) -> Obj: ...

    async def list(self, namespace: str | None, q: ListQuery) -> Obj: ...

    async def update(
        self, namespace: str | None, name: str, obj: Obj, *, subresource: str = "", dry_run: bool = False
    ) -> tuple[Obj, bool]: ...

    async def patch(
        self,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj | None], Obj],
        *,
        subresource: str = "",
        dry_run: bool = False,
        create_if_missing: bool = False,
    ) -> tuple[Obj, bool]: ...

    async def delete(
        self, namespace: str | None, name: str, options: Obj | None, *, dry_run: bool = False
    ) -> tuple[Obj, bool]: ...

    async def delete_collection(
        self, namespace: str | None, q: ListQuery, options: Obj | None, *, dry_run: bool = False
    ) -> Obj: ...

    async def watch(self, namespace: str | None, q: ListQuery, *, coalesce: bool = False) -> AsyncIterator[bytes]:
        """Wire lines; with ``coalesce`` an item may be several whole lines (for a caller that only writes them)."""
        ...


@dataclass(frozen=True, slots=True)
class Served:
    info: ResourceInfo
    registry: ResourceRegistry


class ServedResources:
    """Lookup by (group, version, plural); iteration in registration order."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], Served] = {}
        #: Bumped on every change; caches of derived documents key on it.
        self.generation = 0
        self._by_resource: dict[tuple[str, str], Served] = {}
        self._by_resource_generation = -1

    def add(self, info: ResourceInfo, registry: ResourceRegistry) -> None:
        self._by_key[(info.group, info.version, info.plural)] = Served(info, registry)
        self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        if self._by_key.pop((group, version, plural), None) is not None:
            self.generation += 1

    def find(self, group: str, version: str, plural: str) -> Served | None:
        return self._by_key.get((group, version, plural))

    def find_any_version(self, group: str, plural: str) -> Served | None:
        """The first-registered version of ``group``/``plural``: what admission's readers look objects up in.

        Indexed once per ``generation``: admission asks on every request (webhook configurations,
        namespaces, limit ranges), and scanning every served resource showed in profiles at 5,000 nodes.
        """
        if self._by_resource_generation != self.generation:
            index: dict[tuple[str, str], Served] = {}
            for served in self._by_key.values():
                index.setdefault((served.info.group, served.info.plural), served)
            self._by_resource, self._by_resource_generation = index, self.generation
        return self._by_resource.get((group, plural))

    def infos(self) -> list[ResourceInfo]:
        return [s.info for s in self._by_key.values()]

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [s.info for s in self._by_key.values() if s.info.group == group and s.info.version == version]

    def has_group_version(self, group: str, version: str) -> bool:
        return any(s.info.group == group and s.info.version == version for s in self._by_key.values())

    def __iter__(self) -> Iterator[Served]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)
