"""Garbage collection of old CertificateSigningRequests.

Upstream: pkg/controller/certificates/cleaner.  Once an hour (and at start)
every request in the cache is checked and deleted when it is:

* Approved and issued, and its Approved condition was last updated over an
  hour ago;
* Denied, its Denied condition last updated over an hour ago;
* Failed, its Failed condition last updated over an hour ago;
* pending (no conditions at all) and created over 24 hours ago;
* Approved and issued, and the certificate has expired.

Times are the injected clock's (tests move a FakeClock instead of waiting).
``cleanup_reason`` is the pure rule; the controller only lists and deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from skiff.api import certificate_requests as csrs
from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS
from skiff.client.timefmt import parse_rfc3339
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

CLEAN_KEY = "csrcleaner"
POLLING_INTERVAL_S = 3600.0
APPROVED_EXPIRATION_S = 3600.0
DENIED_EXPIRATION_S = 3600.0
PENDING_EXPIRATION_S = 24 * 3600.0


def _older_than(timestamp: Any, seconds: float, now: float) -> bool:
    """isOlderThan: a set time more than ``seconds`` before ``now``."""
    if not isinstance(timestamp, str) or not timestamp:
        return False
    try:
        return now - parse_rfc3339(timestamp) > seconds
    except ValueError:
        return False


def cleanup_reason(csr: Mapping[str, Any], now: float) -> str | None:
    """Why the cleaner deletes ``csr`` at ``now``, or None to keep it."""
    conditions = csrs.conditions_of(csr)
    issued = csrs.is_issued(csr)
    for condition in conditions:
        updated = condition.get("lastUpdateTime")
        kind = condition.get("type")
        if kind == csrs.APPROVED and issued and _older_than(updated, APPROVED_EXPIRATION_S, now):
            return "it is more than an hour old and approved"
        if kind == csrs.DENIED and _older_than(updated, DENIED_EXPIRATION_S, now):
            return "it is more than an hour old and denied"
        if kind == csrs.FAILED and _older_than(updated, DENIED_EXPIRATION_S, now):
            return "it is more than an hour old and failed"
    created = (csr.get("metadata") or {}).get("creationTimestamp")
    if not conditions and _older_than(created, PENDING_EXPIRATION_S, now):
        return "it is more than 24 hours old and unhandled"
    if issued and any(c.get("type") == csrs.APPROVED for c in conditions):
        not_after = csrs.certificate_not_after(csrs.certificate_of(csr))
        if not_after is not None and now > not_after.timestamp():
            return "the associated certificate is expired"
    return None


class CSRCleanerController(Controller):
    name = "csrcleaner"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.period_s = float(context.options.get("csr-cleaner-period", POLLING_INTERVAL_S))
        self.csrs = self.informers.informer(CERTIFICATESIGNINGREQUESTS)
        self.enqueue(CLEAN_KEY)

    async def sync(self, key: str) -> None:
        try:
            await self.clean()
        finally:
            self.queue.add_after(CLEAN_KEY, self.period_s)

    async def clean(self) -> None:
        """One pass; a failed delete does not stop the others, and fails the pass at the end."""
        now = self.clock.now()
        failure: ApiError | None = None
        for csr in self.csrs.list():
            reason = cleanup_reason(csr, now)
            if reason is None:
                continue
            meta = csr["metadata"]
            log.info("csrcleaner: deleting %s: %s", meta["name"], reason)
            try:
                await self.client.delete(CERTIFICATESIGNINGREQUESTS, meta["name"], preconditions={"uid": meta["uid"]})
            except ApiError as err:
                if not (is_not_found(err) or err.code == 409):
                    failure = failure or err
        if failure is not None:
            raise failure


CONTROLLERS = [ControllerSpec("csrcleaner", CSRCleanerController, workers=1, service_account="certificate-controller")]
