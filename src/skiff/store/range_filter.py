"""etcd's server-side shaping of a Range result: filters, sort, limit, keys-only.

Mirrors ``applierV3backend.Range`` of etcd v3.5: with a sort order or any
min/max mod/create revision filter, etcd fetches the whole range, prunes,
sorts, then truncates to ``limit`` and sets ``more``; otherwise it fetches
``limit + 1`` keys in key order.  ``count`` is always the number of keys in
the range before filters and limit.  A sort target other than KEY with sort
order NONE sorts ascending.  Ties keep key order (Go's sort on etcd's small
results behaves so; Python's sort is stable, also when descending).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from skiff.store.types import KeyValue, Range, SortOrder, SortTarget

_SORT_KEYS: dict[SortTarget, Callable[[KeyValue], Any]] = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


def needs_whole_range(req: Range) -> bool:
    """True when etcd fetches every key of the range before limiting."""
    return bool(
        req.sort_order != SortOrder.NONE
        or req.min_mod_revision
        or req.max_mod_revision
        or req.min_create_revision
        or req.max_create_revision
    )


def needs_values(req: Range) -> bool:
    """Values are read unless keys-only and not sorted by value."""
    return not req.keys_only or req.sort_target == SortTarget.VALUE


def shape_range(req: Range, kvs: Sequence[KeyValue]) -> tuple[tuple[KeyValue, ...], bool]:
    """Filter, sort, truncate ``kvs`` (fetched in key order) as etcd; returns (kvs, more)."""
    out = list(kvs)
    if req.max_mod_revision:
        out = [kv for kv in out if kv.mod_revision <= req.max_mod_revision]
    if req.min_mod_revision:
        out = [kv for kv in out if kv.mod_revision >= req.min_mod_revision]
    if req.max_create_revision:
        out = [kv for kv in out if kv.create_revision <= req.max_create_revision]
    if req.min_create_revision:
        out = [kv for kv in out if kv.create_revision >= req.min_create_revision]
    order = req.sort_order
    if req.sort_target != SortTarget.KEY and order == SortOrder.NONE:
        order = SortOrder.ASCEND
    if order != SortOrder.NONE and not (req.sort_target == SortTarget.KEY and order == SortOrder.ASCEND):
        out.sort(key=_SORT_KEYS[SortTarget(req.sort_target)], reverse=order == SortOrder.DESCEND)
    more = False
    if req.limit > 0 and len(out) > req.limit:
        out = out[: req.limit]
        more = True
    if req.keys_only:
        out = [
            KeyValue(kv.key, b"", kv.create_revision, kv.mod_revision, kv.version, kv.lease) if kv.value else kv
            for kv in out
        ]
    return tuple(out), more
