"""Table assembly for ``kubectl get``: column definitions, rows, and the cell formats Kubernetes uses.

Contract (how a strategy describes its Table):

* ``Strategy.columns`` is the COMPLETE ordered column list, Name and Age
  included, exactly as kube-apiserver's printer declares it
  (k8s.io/kubernetes pkg/printers/internalversion/printers.go).  The Name
  column is marked by ``format == "name"`` and the Age column is
  ``AGE_COLUMN``; their position varies (pods put their -o wide columns after
  Age, events put Name last).
* ``Strategy.row(obj, now)`` returns the cells of every OTHER column, in order.
* ``build_row`` fills in the Name and Age cells at their positions.
* A strategy with no columns gets Kubernetes' default table convertor
  (k8s.io/apiserver pkg/registry/rest/table.go): Name, and "Created At" as
  an RFC 3339 date.

The server always renders every column, -o wide ones too (kube-apiserver
generates tables with ``Wide: true``; kubectl hides priority>0 columns).

Also here: ``human_duration`` (k8s.io/apimachinery pkg/util/duration
HumanDuration) and the small formatters several printers share
(labels.FormatLabels, metav1.FormatLabelSelector, container names/images).
Pure functions: ``now`` is always passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj

if TYPE_CHECKING:
    from skiff.registry.resource import ResourceInfo

#: Kubernetes' default table convertor columns (rest.NewDefaultTableConvertor).
CREATED_AT_COLUMN = Column(
    "Created At",
    type="date",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)
DEFAULT_COLUMNS: tuple[Column, ...] = (NAME_COLUMN, CREATED_AT_COLUMN)


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: ~2-3 significant figures ("5s", "3m2s", "6h", "2d", "3y")."""
    whole = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        secs = whole % 60
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        mins = minutes % 60
        return f"{hours}h" if mins == 0 else f"{hours}h{mins}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d" if rem == 0 else f"{hours // 24}d{rem}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time / MicroTime string as an aware datetime; None when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, "<unknown>" when unset."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def between(start: Any, end: Any) -> str:
    """HumanDuration(end - start) for two timestamps ("" when either is unset)."""
    begin, finish = parse_time(start), parse_time(end)
    if begin is None or finish is None:
        return ""
    return human_duration((finish - begin).total_seconds())


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted "k=v" joined by commas, "<none>" when empty."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def selector_string(selector: Any) -> str:
    """LabelSelectorAsSelector(sel).String(): requirements sorted by key, "" for nil or empty."""
    if not isinstance(selector, dict):
        return ""
    try:
        return str(label_selector_from_structured(selector))
    except ApiError:
        return "<error>"


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: like ``selector_string`` but "<none>" when empty."""
    text = selector_string(selector)
    return text or "<none>"


def container_cells(containers: Any) -> tuple[str, str]:
    """layoutContainerCells: container names and images, each comma-joined."""
    items = [c for c in containers or [] if isinstance(c, dict)]
    return ",".join(str(c.get("name", "")) for c in items), ",".join(str(c.get("image", "")) for c in items)


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]... or None when any step is missing."""
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    """The Table's ``columnDefinitions`` for a resource."""
    return [c.to_dict() for c in (info.strategy.columns or DEFAULT_COLUMNS)]


def build_row(info: ResourceInfo, obj: Obj, now: datetime) -> list[Any]:
    """The cells of one Table row: the strategy's cells with Name and Age put in their places."""
    meta = obj.get("metadata") or {}
    columns = info.strategy.columns
    if not columns:
        created = parse_time(meta.get("creationTimestamp"))
        stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
        return [meta.get("name", ""), stamp]
    own = iter(info.strategy.row(obj, now))
    cells: list[Any] = []
    for column in columns:
        if column.format == "name":
            cells.append(info.strategy.display_name(obj))
        elif column == AGE_COLUMN:  # CRD columns named "Age" render their own cells
            cells.append(since(meta.get("creationTimestamp"), now))
        else:
            cells.append(next(own, None))
    return cells
