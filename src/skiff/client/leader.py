"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

A candidate takes the Lease when it is free or when its holder has not
renewed it for ``leaseDurationSeconds`` *as observed locally* (clocks of
different machines are never compared: we time from when we last saw the
record change, as client-go does).  Every write is a compare-and-swap on the
Lease's resourceVersion, so two candidates can never both win.  The leader
renews every ``retry_period_s``; if it cannot renew within
``renew_deadline_s`` it stops leading (its ``lead()`` is cancelled) before
anyone else may take over.  ``stop()`` releases the Lease so a successor
need not wait out the duration (ReleaseOnCancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from skiff.api.status import ApiError
from skiff.client.clock import Clock, RealClock
from skiff.client.errors import is_not_found
from skiff.client.resources import LEASES
from skiff.client.rest import ApiClient
from skiff.client.timefmt import rfc3339_micro

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        client: ApiClient,
        *,
        name: str,
        identity: str,
        namespace: str = "kube-system",
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.identity = identity
        self.namespace = namespace
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.clock = clock or RealClock()
        self._observed: tuple[str, float] | None = None  # (record fingerprint, when we saw it change)
        self._stopping = asyncio.Event()
        self.is_leader = False

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Contend, lead while holding the Lease, re-contend after losing it; return after ``stop()``."""
        while not self._stopping.is_set():
            if not await self._try_acquire_or_renew():
                await self._pause(self.retry_period_s)
                continue
            log.info("%s: became leader of %s/%s", self.identity, self.namespace, self.name)
            self.is_leader = True
            task = asyncio.create_task(_call(lead))
            try:
                await self._keep_renewing(task)
            finally:
                self.is_leader = False
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._release()

    async def _keep_renewing(self, task: asyncio.Task[None]) -> None:
        last_renew = self.clock.monotonic()
        while not self._stopping.is_set() and not task.done():
            await self._pause(self.retry_period_s)
            if self._stopping.is_set():
                return
            if await self._try_acquire_or_renew():
                last_renew = self.clock.monotonic()
            elif self.clock.monotonic() - last_renew >= self.renew_deadline_s:
                log.warning("%s: lost leadership of %s/%s", self.identity, self.namespace, self.name)
                return
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _try_acquire_or_renew(self) -> bool:
        now = self.clock.now()
        try:
            try:
                lease = await self.client.get(LEASES, self.name, self.namespace)
            except ApiError as err:
                if not is_not_found(err):
                    raise
                await self.client.create(LEASES, self._lease_body(None, now), self.namespace)
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            fingerprint = f"{holder}|{spec.get('renewTime')}|{spec.get('leaseTransitions')}"
            if self._observed is None or self._observed[0] != fingerprint:
                self._observed = (fingerprint, self.clock.monotonic())
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_s)
            expired = self.clock.monotonic() - self._observed[1] >= duration
            if holder and holder != self.identity and not expired:
                return False
            await self.client.update(LEASES, self._lease_body(lease, now))
            return True
        except (TimeoutError, ApiError, OSError, aiohttp.ClientError) as err:
            log.debug("%s: lease %s/%s not taken: %s", self.identity, self.namespace, self.name, err)
            return False

    def _lease_body(self, current: dict[str, Any] | None, now: float) -> dict[str, Any]:
        stamp = rfc3339_micro(now)
        spec = dict((current or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if current else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=int(self.lease_duration_s), renewTime=stamp)
        meta = {"name": self.name, "namespace": self.namespace}
        if current:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    async def _release(self) -> None:
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=rfc3339_micro(self.clock.now()))
            await self.client.update(LEASES, {**lease, "spec": spec})
        except (TimeoutError, ApiError, OSError, aiohttp.ClientError) as err:
            log.info("%s: lease %s/%s not released: %s", self.identity, self.namespace, self.name, err)


async def _call(lead: Callable[[], Awaitable[None]]) -> None:
    await lead()
