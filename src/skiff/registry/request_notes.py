"""What serving a request adds to its answer besides the object: warnings and audit annotations.

Upstream carries both in the request context: admission plugins call
``warning.AddWarning(ctx, "", text)`` (k8s.io/apiserver pkg/warning) and
``audit.AddAuditAnnotation(ctx, key, value)``; the HTTP layer turns the
warnings into ``Warning: 299 - "text"`` response headers and the annotations
into the audit event's ``annotations``.  Here the HTTP layer ``begin()``s a
``RequestNotes`` per request and reads it back when it answers; the registry
(admission) only adds to it.

A ContextVar holding a mutable record, as ``request_user``: every request is
served in its own task, so notes never leak between requests, and work the
request hands to other tasks (which copy the context) still adds to the same
record.  Outside a request (the API server's own writes) nothing is recorded.
Warnings are kept once each, in the order first added (upstream's recorder
deduplicates too); an annotation key keeps its first value, as
``AddAuditAnnotation`` does.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class RequestNotes:
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


CURRENT_NOTES: ContextVar[RequestNotes | None] = ContextVar("skiff_request_notes", default=None)


def begin() -> RequestNotes:
    """A fresh record for the request being served (the HTTP layer calls this once per request)."""
    notes = RequestNotes()
    CURRENT_NOTES.set(notes)
    return notes


def add_warning(text: str) -> None:
    notes = CURRENT_NOTES.get()
    if notes is not None and text and text not in notes.warnings:
        notes.warnings.append(text)


def add_audit_annotation(key: str, value: str) -> None:
    notes = CURRENT_NOTES.get()
    if notes is not None:
        notes.audit_annotations.setdefault(key, value)
