"""Controller expectations: do not act again until the effects of the last action are seen.

client-go's ``ControllerExpectations`` / ``UIDTrackingControllerExpectations``
(pkg/controller/controller_utils.go).  A controller that creates N pods records
``expect_creations(key, N)``; every pod ADDED event the informer delivers calls
``creation_observed(key)``.  Until the counts reach zero (or the record is
older than ``EXPECTATIONS_TTL_S``, in case a watch event was lost), the
controller's sync must not create or delete again: its informer cache is
behind its own writes, and acting on it would over-create.

Deletions are tracked by pod key as well (``expect_deletions(key, pod_keys)``),
so an informer DELETE event for a pod we asked to delete is counted once even
when the pod also disappears through a relist.

The clock is injected (``now`` returns epoch seconds) so tests use a fake one.
Pure bookkeeping, no I/O; only the event loop thread touches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: ExpectationsTimeout upstream: after this a controller syncs even if events are missing.
EXPECTATIONS_TTL_S = 5 * 60.0


@dataclass
class _Record:
    add: int
    delete: int
    timestamp: float
    deleting: set[str] = field(default_factory=set)


class ControllerExpectations:
    """Pending creations/deletions per controller key (``namespace/name``)."""

    def __init__(self, now: Callable[[], float] = time.time, ttl_s: float = EXPECTATIONS_TTL_S) -> None:
        self._now = now
        self._ttl_s = ttl_s
        self._records: dict[str, _Record] = {}

    # -- recording what we are about to do ---------------------------------------------------
    def expect_creations(self, key: str, count: int) -> None:
        """Replace the record: ``count`` creations are about to be issued (SetExpectations(add=count))."""
        self._records[key] = _Record(count, 0, self._now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Replace the record: the given pods are about to be deleted (UID-tracking ExpectDeletions)."""
        keys = set(pod_keys)
        self._records[key] = _Record(0, len(keys), self._now(), keys)

    def raise_expectations(self, key: str, add: int, delete: int) -> None:
        """Add to an existing record's counts (RaiseExpectations); no-op when there is none."""
        rec = self._records.get(key)
        if rec is not None:
            rec.add += add
            rec.delete += delete

    # -- observing the results ----------------------------------------------------------------
    def creation_observed(self, key: str) -> None:
        """An ADDED event for one of the controller's pods (or a create that failed: lower the count)."""
        rec = self._records.get(key)
        if rec is not None:
            rec.add -= 1

    def deletion_observed(self, key: str, pod_key: str | None = None) -> None:
        """A DELETE event (or a failed delete).  With ``pod_key``, counts only pods we asked to delete, once."""
        rec = self._records.get(key)
        if rec is None:
            return
        if pod_key is not None and rec.deleting:
            if pod_key not in rec.deleting:
                return
            rec.deleting.discard(pod_key)
        rec.delete -= 1

    # -- the question a sync asks ------------------------------------------------------------
    def satisfied(self, key: str) -> bool:
        """SatisfiedExpectations: no record, every expected event seen, or the record has expired."""
        rec = self._records.get(key)
        if rec is None:
            return True
        if rec.add <= 0 and rec.delete <= 0:
            return True
        return self._now() - rec.timestamp > self._ttl_s

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected; (0, 0) without a record."""
        rec = self._records.get(key)
        return (0, 0) if rec is None else (max(rec.add, 0), max(rec.delete, 0))

    def is_deleting(self, key: str, pod_key: str) -> bool:
        """Whether ``pod_key`` is a deletion this controller issued and has not yet seen."""
        rec = self._records.get(key)
        return rec is not None and pod_key in rec.deleting

    def delete(self, key: str) -> None:
        """Forget a controller (DeleteExpectations), e.g. when it is deleted."""
        self._records.pop(key, None)
