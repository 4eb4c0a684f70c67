"""The admission seam: what the generic registry asks before it writes.

Kubernetes runs admission plugins between decoding a request and storing it
(k8s.io/apiserver pkg/admission).  Here the generic registry calls one
``AdmissionChain`` at fixed points of its write sequence:

* create: prepare → default → **admit** (mutating) → validate → allocation
  hooks → **validate** (validating admission) → compare-and-swap write;
* update: carry metadata → prepare → default → **admit** → validate →
  allocation hooks → **validate** → write (re-run on a lost race, as upstream
  re-runs admission inside GuaranteedUpdate);
* delete: **admit** and **validate** before the delete rules run.

A plugin mutates only ``attrs.obj`` and raises ``ApiError`` to refuse.
Plugins that need other objects (the namespace of the request, LimitRanges,
PriorityClasses) read them through an ``ObjectReader`` the API server injects,
so this layer never reaches up into the HTTP layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from skiff.api.status import ApiError, Cause, forbidden
from skiff.registry.request_user import RequestUser
from skiff.registry.resource import Obj, ResourceInfo


class Operation(StrEnum):
    """admission.Operation."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


@dataclass(frozen=True, slots=True)
class Attributes:
    """admission.Attributes: what is being done to which object.

    ``obj`` is the object about to be written (None on delete) and may be
    mutated by mutating plugins; ``old`` is the stored object on update.
    ``user`` is the requesting user (``request_user.CURRENT_USER``; None for
    the API server's own writes).
    """

    operation: Operation
    info: ResourceInfo
    namespace: str
    name: str
    obj: Obj | None = None
    old: Obj | None = None
    subresource: str = ""
    dry_run: bool = False
    user: RequestUser | None = None

    def is_kind(self, group: str, kind: str) -> bool:
        return self.info.group == group and self.info.kind == kind


class Admission(Protocol):
    """One admission plugin: ``admit`` may mutate ``attrs.obj``; ``validate`` may only refuse."""

    async def admit(self, attrs: Attributes) -> None: ...

    async def validate(self, attrs: Attributes) -> None: ...


class ObjectReader(Protocol):
    """Reads of other resources for plugins (the API server's registries behind it)."""

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Obj | None:
        """The object, or None when it does not exist.

        ``fresh=False`` accepts the watch cache's copy when it has one (an
        informer's view, as upstream's plugins read through listers); absent
        there, it is read from the store.
        """
        ...

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Obj]:
        """Every object of the resource in ``namespace`` ("" = all or cluster-scoped).

        ``fresh=False`` takes the watch cache's view without waiting for it to
        catch up with the store (an informer lister's), when the cache is synced.
        """
        ...


class AdmissionChain:
    """Plugins in order: every ``admit`` first (in order), then every ``validate``, as upstream."""

    def __init__(self, plugins: Sequence[Admission] = ()) -> None:
        self.plugins = tuple(plugins)

    async def admit(self, attrs: Attributes) -> None:
        for plugin in self.plugins:
            await plugin.admit(attrs)

    async def validate(self, attrs: Attributes) -> None:
        for plugin in self.plugins:
            await plugin.validate(attrs)


class PluginBase:
    """No-op admit and validate; plugins override what they need."""

    async def admit(self, attrs: Attributes) -> None:
        return None

    async def validate(self, attrs: Attributes) -> None:
        return None


def object_name(attrs: Attributes) -> str:
    """extractResourceName: the request's name, else the object's own."""
    if attrs.name:
        return attrs.name
    meta = (attrs.obj or {}).get("metadata") or {}
    return str(meta.get("name") or "")


def admission_forbidden(attrs: Attributes, why: str, causes: Sequence[Cause] = ()) -> ApiError:
    """admission.NewForbidden: ``<resource> "<name>" is forbidden: <why>`` (403 Forbidden)."""
    err = forbidden(attrs.info.plural, attrs.info.group, object_name(attrs), why)
    if causes and err.details is not None:
        err.details = dataclasses.replace(err.details, causes=tuple(causes))
    return err
