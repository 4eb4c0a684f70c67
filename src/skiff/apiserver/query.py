"""Query-string options of resource requests: list/watch options, dryRun, DeleteOptions.

Unknown parameters are ignored (clients send ``timeout=32s``, ``pretty``, ...);
known ones that do not parse are 400, as Kubernetes' parameter codec answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.status import bad_request
from skiff.registry.listing import ListQuery


def _int(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f'invalid value for {name}: "{text}": expected an integer') from None


def _bool(query: Mapping[str, str], name: str) -> bool | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise bad_request(f'invalid value for {name}: "{text}": expected a boolean')


def list_query(query: Mapping[str, str], name: str = "") -> ListQuery:
    """ListOptions from the query; ``name`` (a watch on one object) adds ``metadata.name=<name>``."""
    field_selector = query.get("fieldSelector", "")
    if name:
        own = f"metadata.name={name}"
        field_selector = f"{field_selector},{own}" if field_selector else own
    timeout = _int(query, "timeoutSeconds")
    return ListQuery(
        label_selector=query.get("labelSelector", ""),
        field_selector=field_selector,
        limit=_int(query, "limit") or 0,
        continue_token=query.get("continue", ""),
        resource_version=query.get("resourceVersion", ""),
        resource_version_match=query.get("resourceVersionMatch", ""),
        timeout_seconds=float(timeout) if timeout is not None and timeout > 0 else None,
        allow_watch_bookmarks=bool(_bool(query, "allowWatchBookmarks")),
        send_initial_events=_bool(query, "sendInitialEvents"),
    )


def dry_run(values: list[str]) -> bool:
    """``dryRun=All`` (the only value Kubernetes accepts); none means a real write."""
    for value in values:
        if value != "All":
            raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def delete_options(query: Mapping[str, str], body: Mapping[str, Any] | None) -> dict[str, Any]:
    """A DeleteOptions dict: the body's, with query parameters filling what it leaves unset.

    kubectl sends ``{"propagationPolicy":"Background"}`` as a body; the Python
    client may send ``propagationPolicy`` / ``gracePeriodSeconds`` as query
    parameters.  Upstream decodes the query first and lets the body win.
    """
    options: dict[str, Any] = dict(body or {})
    grace = _int(query, "gracePeriodSeconds")
    if grace is not None:
        options.setdefault("gracePeriodSeconds", grace)
    policy = query.get("propagationPolicy")
    if policy:
        options.setdefault("propagationPolicy", policy)
    orphan = _bool(query, "orphanDependents")
    if orphan is not None:
        options.setdefault("orphanDependents", orphan)
    return options
