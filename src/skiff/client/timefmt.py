"""RFC 3339 timestamps as Kubernetes writes them (metav1.Time: seconds, UTC, ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(t: float | None = None) -> str:
    moment = datetime.now(UTC) if t is None else datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float | None = None) -> str:
    """metav1.MicroTime, as Leases and events.k8s.io carry it."""
    moment = datetime.now(UTC) if t is None else datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; accepts ``Z`` or an offset and optional fractions."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
