"""ResourceQuota admission (k8s.io/apiserver pkg/admission/plugin/resourcequota): quotas hold at write time.

Validating only, last in the chain as upstream.  Every create or update of a
namespaced object — not a subresource, not an ignored resource (events,
reviews, bindings) — whose evaluator (``skiff.api.quota``) handles the
operation is checked against every ResourceQuota of its namespace that
matches it (its ``status.hard`` names a resource the evaluator tracks, its
scopes select the object):

* refused (403, upstream's words, ``<resource> "<name>" is forbidden: ...``)
  when a cpu/memory resource is quota'd and a container does not state it
  (``failed quota: <q>: must specify requests.cpu for: c``), when the
  controller has not yet computed the usage of a tracked resource
  (``status unknown for quota: <q>, resources: ...``), and when
  ``status.used`` plus the request would pass ``status.hard``
  (``exceeded quota: <q>, requested: r=v, used: r=v, limited: r=v``);
* charged otherwise: the request's usage (on update, only the increase over
  the stored object, for quotas that matched it already) is added to
  ``status.used`` of each matching quota it changes, by a status write that
  is a compare-and-swap on the quota's resourceVersion.  A lost race
  re-reads the quotas that failed, fresh, and re-checks only those, up to
  ``retries`` more times (upstream's 3), then answers the last write error
  (409 Conflict).  Dry runs are checked and never charged.

Requests of one namespace with quotas are evaluated one at a time
(upstream's per-namespace work queue, without its batching of several
requests into one status write), so this server's concurrent creates never
race each other; the compare-and-swap covers other servers and the quota
controller.
Quotas are read from the watch cache; when it has none for the namespace, a
live list is remembered for ``LIVE_TTL_S``, and the quotas this plugin wrote
last stand in for older cached copies (upstream's ``liveLookupCache`` and
``updatedQuotas``).  Usage charged for a write that fails later is corrected
by the quota controller's next recalculation, as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from skiff.api.quota import (
    IGNORED_RESOURCES,
    UPDATE,
    Evaluator,
    ResourceList,
    add,
    evaluator_for,
    exceeded,
    format_list,
    mask,
    negative,
    parse_list,
    pretty_print,
    quota_matches,
    remove_zeros,
    subtract_non_negative,
)
from skiff.api.status import ApiError
from skiff.registry.admission.chain import Attributes, ObjectReader, PluginBase, admission_forbidden
from skiff.registry.metadata import utc_now
from skiff.registry.resource import Obj

#: Upstream's liveTTL and its LRU sizes (live lookups, quotas written).
LIVE_TTL_S = 30.0
CACHE_SIZE = 100
RETRIES = 3


class QuotaStatusWriter(Protocol):
    """How the plugin charges quotas: the API server's own status write (upstream's loopback client)."""

    async def update_status(self, group: str, plural: str, namespace: str, obj: Obj) -> Obj:
        """Write ``obj``'s status subresource if its ``metadata.resourceVersion`` is still current.

        Returns the stored object; raises ApiError (409 Conflict when the object changed meanwhile).
        """
        ...


def _name(quota: Mapping[str, Any]) -> str:
    return str((quota.get("metadata") or {}).get("name") or "")


def _revision(quota: Mapping[str, Any]) -> int:
    rv = str((quota.get("metadata") or {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


def check_request(
    quotas: Sequence[Mapping[str, Any]], attrs: Attributes, evaluator: Evaluator, now: datetime | None = None
) -> dict[str, ResourceList]:
    """checkRequest: the new ``status.used`` of every quota the request changes, by quota name.

    Raises the 403 upstream answers when a quota refuses the request.
    """
    obj = attrs.obj or {}
    interesting: list[Mapping[str, Any]] = []
    for quota in quotas:
        if not quota_matches(quota, evaluator, obj):
            continue
        status = quota.get("status") or {}
        restricted = evaluator.matching_resources(status.get("hard") or {})
        why = evaluator.constraints(restricted, obj)
        if why:
            raise admission_forbidden(attrs, f"failed quota: {_name(quota)}: {why}")
        used = status.get("used") or {}
        if any(name not in used for name in restricted):
            names = ",".join(sorted(restricted))
            raise admission_forbidden(attrs, f"status unknown for quota: {_name(quota)}, resources: {names}")
        interesting.append(quota)
    if not interesting:
        return {}
    usage = evaluator.usage(obj, now)
    below_zero = negative(usage)
    if below_zero:
        raise admission_forbidden(attrs, f"quota usage is negative for resource(s): {','.join(below_zero)}")
    deltas = {_name(quota): usage for quota in interesting}
    if attrs.operation == UPDATE:
        if attrs.old is None:
            raise admission_forbidden(attrs, "unable to get previous usage since prior version of object was not found")
        if (attrs.old.get("metadata") or {}).get("resourceVersion"):
            # An update, not a create-on-update: charge only what grew, to quotas that held the old object.
            increase = subtract_non_negative(usage, evaluator.usage(attrs.old, now))
            for quota in interesting:
                if quota_matches(quota, evaluator, attrs.old):
                    deltas[_name(quota)] = increase
    charges: dict[str, ResourceList] = {}
    for quota in interesting:
        delta = remove_zeros(deltas[_name(quota)])
        if not delta:
            continue
        status = quota.get("status") or {}
        hard, used = parse_list(status.get("hard")), parse_list(status.get("used"))
        requested = mask(delta, hard)
        new_used = add(used, requested)
        over = exceeded(mask(new_used, requested), hard)
        if over:
            raise admission_forbidden(
                attrs,
                f"exceeded quota: {_name(quota)}, requested: {pretty_print(mask(requested, over))}, "
                f"used: {pretty_print(mask(used, over))}, limited: {pretty_print(mask(hard, over))}",
            )
        if new_used != used:
            charges[_name(quota)] = new_used
    return charges


class ResourceQuota(PluginBase):
    def __init__(
        self,
        reader: ObjectReader,
        writer: QuotaStatusWriter,
        *,
        clock: Callable[[], datetime] = utc_now,
        retries: int = RETRIES,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.clock = clock
        self.retries = retries
        self._live: dict[str, tuple[float, list[Obj]]] = {}
        self._written: dict[tuple[str, str], Obj] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def validate(self, attrs: Attributes) -> None:
        if attrs.subresource or not attrs.namespace or attrs.obj is None:
            return
        if (attrs.info.group, attrs.info.plural) in IGNORED_RESOURCES:
            return
        evaluator = evaluator_for(attrs.info.group, attrs.info.plural)
        if not evaluator.handles(attrs.operation) or not await self._quotas(attrs.namespace):
            return  # no quota to check: no need to wait behind the namespace's other requests
        async with self._serialized(attrs.namespace):
            await self._evaluate(attrs, evaluator)

    async def _evaluate(self, attrs: Attributes, evaluator: Evaluator) -> None:
        quotas = await self._quotas(attrs.namespace)
        last_error: ApiError | None = None
        for attempt in range(self.retries + 1):
            if not quotas:
                return
            charges = check_request(quotas, attrs, evaluator, self.clock())
            if attrs.dry_run or not charges:
                return
            failed: set[str] = set()
            for quota in quotas:
                name = _name(quota)
                if name not in charges:
                    continue
                status = dict(quota.get("status") or {}, used=format_list(charges[name]))
                try:
                    written = await self.writer.update_status(
                        "", "resourcequotas", attrs.namespace, dict(quota, status=status)
                    )
                except ApiError as err:
                    failed.add(name)
                    last_error = err
                    continue
                self._remember(attrs.namespace, written)
            if not failed:
                return
            if attempt < self.retries:
                fresh = await self.reader.list("", "resourcequotas", attrs.namespace)
                quotas = [quota for quota in fresh if _name(quota) in failed]
        assert last_error is not None
        raise last_error

    async def _quotas(self, namespace: str) -> list[Obj]:
        """The namespace's quotas: the watch cache's (newer copies this plugin wrote win), else a live list."""
        quotas = await self.reader.list("", "resourcequotas", namespace, fresh=False)
        if not quotas:
            now = time.monotonic()
            hit = self._live.get(namespace)
            if hit is not None and hit[0] > now:
                quotas = hit[1]
            else:
                quotas = await self.reader.list("", "resourcequotas", namespace)
                if len(self._live) >= CACHE_SIZE:
                    self._live.clear()
                self._live[namespace] = (now + LIVE_TTL_S, quotas)
        return [self._newest(namespace, quota) for quota in quotas]

    def _newest(self, namespace: str, quota: Obj) -> Obj:
        key = (namespace, _name(quota))
        written = self._written.get(key)
        if written is None:
            return quota
        if _revision(quota) >= _revision(written):
            del self._written[key]
            return quota
        return written

    def _remember(self, namespace: str, written: Obj) -> None:
        if len(self._written) >= CACHE_SIZE:
            self._written.clear()
        self._written[(namespace, _name(written))] = written

    @contextlib.asynccontextmanager
    async def _serialized(self, namespace: str) -> AsyncIterator[None]:
        """One evaluation at a time per namespace; the lock is dropped when nobody holds or awaits it."""
        lock, users = self._locks.get(namespace) or (asyncio.Lock(), 0)
        self._locks[namespace] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[namespace]
            if users == 1:
                del self._locks[namespace]
            else:
                self._locks[namespace] = (lock, users - 1)
