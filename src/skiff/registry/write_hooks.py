"""Per-resource hooks around the generic registry's store writes (upstream's BeginCreate/BeginUpdate/AfterDelete).

Some resources hold shared state besides their object — a Service's cluster
IP and node ports.  The state is taken *before* the object is written and
cannot be in the same transaction, so ``begin_create``/``begin_update``
return a ``Finish`` the registry always awaits afterwards with whether the
write happened: on False the hook gives back what it took, on True it frees
what the new object no longer uses.  ``after_delete`` runs once an object is
really gone from the Store.  ``begin_*`` may fill fields of the object (the
allocated values) and raise ``ApiError``.  Dry runs check but keep nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from skiff.registry.resource import Obj

Finish = Callable[[bool], Awaitable[None]]


async def finish_nothing(_ok: bool) -> None:
    return None


class WriteHooks(Protocol):
    async def begin_create(self, obj: Obj, dry_run: bool) -> Finish: ...

    async def begin_update(self, new: Obj, old: Obj, dry_run: bool) -> Finish: ...

    async def after_delete(self, obj: Obj) -> None: ...


class NoHooks:
    """The hooks of every resource without shared state."""

    async def begin_create(self, obj: Obj, dry_run: bool) -> Finish:
        return finish_nothing

    async def begin_update(self, new: Obj, old: Obj, dry_run: bool) -> Finish:
        return finish_nothing

    async def after_delete(self, obj: Obj) -> None:
        return None
