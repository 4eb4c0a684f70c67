"""List and watch parameters, selection, continue tokens and the List envelope.

``ListQuery`` is the registry's view of a list/watch request's query string.
``Selection`` compiles its label and field selectors once and matches
objects by their labels and field values (``metadata.name``,
``metadata.namespace`` plus the strategy's ``field_values``); it also says
which watcher index a watch can use (an equality on ``metadata.name`` or
``spec.nodeName``).

Continue tokens are upstream's (k8s.io/apiserver storage ``EncodeContinue``):
base64 of ``{"v":"meta.k8s.io/v1","rv":N,"start":"<key after the prefix>"}``.
A later page is read from the Store at revision ``rv``, so every page of one
list is the same snapshot.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

from skiff.api.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from skiff.api.status import ApiError, Cause, bad_request, gone, invalid
from skiff.registry.resource import Obj, ResourceInfo

CONTINUE_VERSION = "meta.k8s.io/v1"
#: Field selectors every resource supports.
METADATA_FIELDS = ("metadata.name", "metadata.namespace")
#: Fields with a watcher index in the watch cache (upstream's indexed triggers: pods by node).
INDEXED_FIELDS = ("metadata.name", "spec.nodeName")

CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue value from the response to get a consistent snapshot."
)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A list or watch request's parameters (selectors as strings or already parsed)."""

    label_selector: str | LabelSelector = ""
    field_selector: str | FieldSelector = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    timeout_seconds: float | None = None
    allow_watch_bookmarks: bool = False
    send_initial_events: bool | None = None


def validate_list_query(q: ListQuery, watch: bool) -> None:
    """ValidateListOptions: the combinations Kubernetes rejects (422 ListOptions)."""
    causes: list[Cause] = []
    match = q.resource_version_match
    if match:
        if watch:
            if not q.send_initial_events:
                causes.append(
                    Cause(
                        "FieldValueForbidden",
                        "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                        "resourceVersionMatch",
                    )
                )
        if not q.resource_version:
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                    "resourceVersionMatch",
                )
            )
        if q.continue_token:
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden when continue is provided",
                    "resourceVersionMatch",
                )
            )
        if match == "Exact" and q.resource_version == "0":
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    "resourceVersionMatch",
                )
            )
        if match not in ("Exact", "NotOlderThan"):
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", ""',
                    "resourceVersionMatch",
                )
            )
    if q.send_initial_events is not None and not watch:
        causes.append(
            Cause("FieldValueForbidden", "Forbidden: sendInitialEvents is forbidden for list", "sendInitialEvents")
        )
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)
    if q.resource_version and q.resource_version != "0" and not _is_revision(q.resource_version):
        raise bad_request(f"invalid resource version: {q.resource_version}")
    if q.limit < 0:
        raise bad_request("limit must be non-negative")


def _is_revision(text: str) -> bool:
    return text.isdigit() and len(text) < 20


def parse_revision(text: str) -> int:
    """A resourceVersion query parameter as a revision ("" and "0" are 0)."""
    if not text:
        return 0
    if not _is_revision(text):
        raise bad_request(f"invalid resource version: {text}")
    return int(text)


# -- continue tokens -------------------------------------------------------------------


def encode_continue(revision: int, start_key: str, prefix: str) -> str:
    payload = {"v": CONTINUE_VERSION, "rv": revision, "start": start_key[len(prefix) :]}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, absolute start key); 400 for a malformed token, as upstream's DecodeContinue."""
    try:
        raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as err:
        raise bad_request(f"continue key is not valid: {err}") from err
    if not isinstance(payload, dict) or payload.get("v") != CONTINUE_VERSION:
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    revision = payload.get("rv")
    start = payload.get("start")
    if not isinstance(revision, int) or revision <= 0 or not isinstance(start, str):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if ".." in start.split("/") or start.startswith("/"):
        raise bad_request("continue key is not valid: key must be relative")
    return revision, prefix + start


def continue_expired() -> ApiError:
    return gone(CONTINUE_TOO_OLD)


# -- selection -------------------------------------------------------------------------


@dataclass(slots=True)
class Selection:
    """Compiled label and field selectors of one request."""

    label: LabelSelector = field(default_factory=LabelSelector)
    field: FieldSelector = field(default_factory=FieldSelector)
    #: (field, value) of an equality the watch cache can index watchers by, if any.
    index: tuple[str, str] | None = None
    #: The namespace an equality on metadata.namespace pins the request to.
    namespace: str | None = None

    @property
    def empty(self) -> bool:
        return self.label.empty and self.field.empty

    def matches(self, labels: dict[str, str], fields: dict[str, str]) -> bool:
        return self.label.matches(labels) and self.field.matches(fields)


def compile_selection(q: ListQuery, info: ResourceInfo) -> Selection:
    """Parse the selectors (400 on syntax errors or fields the resource cannot select on)."""
    label = q.label_selector
    if isinstance(label, str):
        label = parse_label_selector(label)
    field_sel = q.field_selector
    if isinstance(field_sel, str):
        field_sel = parse_field_selector(field_sel)
    field_sel.check_supported(info.strategy.field_selectors)
    selection = Selection(label=label, field=field_sel)
    for name in INDEXED_FIELDS:
        value = field_sel.exact_match(name)
        if value is not None and (name in METADATA_FIELDS or name in info.strategy.field_selectors):
            selection.index = (name, value)
            break
    selection.namespace = field_sel.exact_match("metadata.namespace")
    return selection


def field_values(obj: Obj, info: ResourceInfo) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    values = {"metadata.name": str(meta.get("name", "")), "metadata.namespace": str(meta.get("namespace", ""))}
    values.update(info.strategy.field_values(obj))
    return values


def labels_of(obj: Obj) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


# -- the List envelope ------------------------------------------------------------------


def list_envelope(
    info: ResourceInfo, items: list[Obj], revision: int, continue_token: str = "", remaining: int | None = None
) -> Obj:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if continue_token:
        meta["continue"] = continue_token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    return {"kind": info.list_kind, "apiVersion": info.group_version, "metadata": meta, "items": items}
