"""Server failures as ``ApiError`` (the same class the API server raises), decoded from Status bodies.

Only the predicates below decide what an error means: "not found" is the one
error that says an object is gone (STYLE.md anti-pattern 3).
"""

from __future__ import annotations

from typing import Any

import orjson

from skiff.api.status import ApiError, Cause, Details

__all__ = ["ApiError", "from_response", "is_already_exists", "is_conflict", "is_not_found"]


def from_response(code: int, body: bytes) -> ApiError:
    """The ApiError a response carries; a non-Status body still yields its code and text."""
    try:
        doc: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("kind") != "Status":
        text = body.decode(errors="replace").strip()[:500]
        return ApiError(code, _reason_for(code), text or f"the server returned HTTP {code}")
    return status_error(doc, code)


def status_error(doc: dict[str, Any], code: int | None = None) -> ApiError:
    raw = doc.get("details")
    details = None
    if isinstance(raw, dict):
        causes = tuple(
            Cause(str(c.get("reason", "")), str(c.get("message", "")), str(c.get("field", "")))
            for c in raw.get("causes") or []
            if isinstance(c, dict)
        )
        details = Details(
            name=str(raw.get("name", "")),
            group=str(raw.get("group", "")),
            kind=str(raw.get("kind", "")),
            uid=str(raw.get("uid", "")),
            causes=causes,
            retry_after_seconds=int(raw.get("retryAfterSeconds") or 0),
        )
    code = int(doc.get("code") or code or 500)
    return ApiError(code, str(doc.get("reason", "")), str(doc.get("message", "")), details)


def _reason_for(code: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "Conflict",
        410: "Gone",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }.get(code, "Unknown")


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == 404


def is_conflict(err: BaseException) -> bool:
    """A stale resourceVersion (409 Conflict), not an AlreadyExists."""
    return isinstance(err, ApiError) and err.code == 409 and err.reason != "AlreadyExists"


def is_already_exists(err: BaseException) -> bool:
    return isinstance(err, ApiError) and err.code == 409 and err.reason == "AlreadyExists"
