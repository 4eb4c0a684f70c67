"""Events (core/v1 and events.k8s.io/v1): the kubectl table and the event field selectors.

Both API versions are the same internal Event upstream; events.k8s.io/v1
renames fields (regarding, note, reportingController, deprecatedSource,
deprecatedCount, deprecated*Timestamp).  ``event_view`` maps either shape
onto the core names so one printer (printEvent) and one field-selector table
(EventToSelectableFields) serve both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.resource import NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy
from skiff.registry.table_format import dig, since

CORE_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
#: events.k8s.io/v1 spells the selectable fields its own way (its field label conversion).
EVENTS_V1_FIELDS = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion",
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reason": "reason",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "type": "type",
}

EVENT_COLUMNS = (
    Column("Last Seen", description="The time at which the most recent occurrence of this event was recorded."),
    Column("Type", description="Type of this event (Normal, Warning), new types could be added in the future"),
    Column("Reason", description="This should be a short, machine understandable string that gives the reason "
           "for the transition into the object's current status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="If referring to a piece of an object instead of an entire "
           "object, this string should contain a valid JSON/Go field access statement."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the status of this operation."),
    Column("First Seen", priority=1, description="The time at which the event was first recorded."),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format="name", description=NAME_COLUMN.description),
)  # fmt: skip


def event_view(obj: Obj) -> Obj:
    """The core/v1 field names of an Event of either API version."""
    if "regarding" not in obj and "note" not in obj and "deprecatedSource" not in obj:
        return obj
    return {
        "involvedObject": obj.get("regarding") or {},
        "reason": obj.get("reason"),
        "message": obj.get("note"),
        "type": obj.get("type"),
        "source": obj.get("deprecatedSource") or {},
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
        "count": obj.get("deprecatedCount"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
    }


class EventStrategy(ObjectStrategy):
    allow_create_on_update = True
    columns = EVENT_COLUMNS
    field_selectors: tuple[str, ...] = CORE_FIELDS

    def field_values(self, obj: Obj) -> dict[str, str]:
        view = event_view(obj)
        involved = view.get("involvedObject") or {}
        values = {f"involvedObject.{k}": str(involved.get(k) or "") for k in
                  ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}  # fmt: skip
        values["reason"] = str(view.get("reason") or "")
        values["reportingComponent"] = str(view.get("reportingComponent") or "")
        values["source"] = str((view.get("source") or {}).get("component") or "")
        values["type"] = str(view.get("type") or "")
        return values

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return event_row(event_view(obj), now)


class EventsV1Strategy(EventStrategy):
    """events.k8s.io/v1 Events: same rules, the v1 field-selector names."""

    field_selectors = tuple(EVENTS_V1_FIELDS)

    def field_values(self, obj: Obj) -> dict[str, str]:
        core = super().field_values(obj)
        return {name: core[core_name] for name, core_name in EVENTS_V1_FIELDS.items()}


def event_row(event: Obj, now: datetime) -> list[Any]:
    """printEvent (wide): Last Seen, Type, Reason, Object, Subobject, Source, Message, First Seen, Count."""
    first = (
        since(event.get("firstTimestamp"), now) if event.get("firstTimestamp") else since(event.get("eventTime"), now)
    )
    last = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = event.get("count") or 0
    series = event.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    return [
        last,
        event.get("type") or "",
        event.get("reason") or "",
        target,
        dig(involved, "fieldPath") or "",
        f"{component}, {host}" if host else component,
        str(event.get("message") or "").strip(),
        first,
        int(count),
    ]
