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

from typing import Any

from skiff.registry.certificates.certificatesigningrequest import (
    ApprovalStrategy,
    StatusStrategy,
    populate_condition_timestamps,
)
from skiff.registry.generic import GenericRegistry
from skiff.registry.metadata import format_time
from skiff.registry.resource import Obj

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
        namespaced = self.info.namespaced
        self.subresource_registries = {
            APPROVAL: self.sibling(ApprovalStrategy(namespaced), _ConditionWriter),
            STATUS: self.sibling(StatusStrategy(namespaced), _ConditionWriter),
        }
