"""The CertificateSigningRequest registry: the ``/approval`` and ``/status`` endpoints' own strategies.

pkg/registry/certificates/certificates/storage, as upstream: the main
resource, ``/status`` and ``/approval`` are three stores over the same key,
each with its strategy (``certificatesigningrequest``).  Writes through the
subresources keep their subresource name, so admission sees
``certificatesigningrequests/approval`` (the CertificateApproval plugin's
cue) and ``certificatesigningrequests/status`` (CertificateSigning's).
Conditions written there get their timestamps from this registry's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from skiff.registry.certificates.certificatesigningrequest import (
    ApprovalStrategy,
    StatusStrategy,
    populate_condition_timestamps,
)
from skiff.registry.generic import GenericRegistry
from skiff.registry.metadata import format_time
from skiff.registry.resource import Obj, Strategy

APPROVAL = "approval"
STATUS = "status"


class _ConditionWriter(GenericRegistry):
    """A subresource's store: the generic write sequence, plus condition timestamps after preparation."""

    def _prepare_update(self, namespace: str | None, name: str, new: Obj, old: Obj, subresource: str) -> None:
        super()._prepare_update(namespace, name, new, old, subresource)
        populate_condition_timestamps(new, old, format_time(self.clock()))


class CertificateSigningRequestRegistry(GenericRegistry):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._endpoints = {
            APPROVAL: self._writer(ApprovalStrategy(self.info.namespaced)),
            STATUS: self._writer(StatusStrategy(self.info.namespaced)),
        }

    def _writer(self, strategy: Strategy) -> GenericRegistry:
        return _ConditionWriter(
            self.store,
            replace(self.info, strategy=strategy),
            self.cache,
            clock=self.clock,
            uid=self.uid,
            max_attempts=self.max_attempts,
            admission=self.admission,
        )

    async def update(
        self, namespace: str | None, name: str, obj: Obj, *, subresource: str = "", dry_run: bool = False
    ) -> tuple[Obj, bool]:
        writer = self._endpoints.get(subresource)
        if writer is not None:
            return await writer.update(None, name, obj, subresource=subresource, dry_run=dry_run)
        return await super().update(namespace, name, obj, subresource=subresource, dry_run=dry_run)

    async def patch(
        self,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj | None], Obj],
        *,
        subresource: str = "",
        dry_run: bool = False,
        create_if_missing: bool = False,
    ) -> tuple[Obj, bool]:
        writer = self._endpoints.get(subresource)
        if writer is not None:
            return await writer.patch(None, name, mutate, subresource=subresource, dry_run=dry_run)
        return await super().patch(
            namespace, name, mutate, subresource=subresource, dry_run=dry_run, create_if_missing=create_if_missing
        )
