"""The one Status builder: Kubernetes ``Status`` errors, shaped byte for byte.

Clients compare these bodies verbatim (the Python client's e2e suite does), so
the key order is Go's struct order — kind, apiVersion, metadata, status,
message, reason, details{name, group, kind, uid, causes, retryAfterSeconds},
code — empty fields are omitted, separators are compact and the body ends
with a newline.  Messages follow k8s.io/apimachinery/pkg/api/errors.

Every failure the API server reports is an ``ApiError``; handlers raise them and
one place turns them into responses.  Nothing else builds a Status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Cause:
    """One field error: ``reason`` is a CauseType (FieldValueInvalid, FieldValueRequired, ...)."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class Details:
    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: tuple[Cause, ...] = ()
    retry_after_seconds: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.group:
            out["group"] = self.group
        if self.kind:
            out["kind"] = self.kind
        if self.uid:
            out["uid"] = self.uid
        if self.causes:
            out["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after_seconds:
            out["retryAfterSeconds"] = self.retry_after_seconds
        return out


@dataclass(eq=False)
class ApiError(Exception):
    """A Kubernetes API failure; ``body()`` is the exact Status bytes."""

    code: int
    reason: str
    message: str
    details: Details | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
        }
        if self.message:
            out["message"] = self.message
        if self.reason:
            out["reason"] = self.reason
        if self.details is not None:  # Go's *StatusDetails: present (even empty) when set
            out["details"] = self.details.to_dict()
        out["code"] = self.code
        return out

    def body(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def qualified(resource: str, group: str) -> str:
    """``deployments.apps``, or ``pods`` for the core group (Kubernetes' GroupResource.String)."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        Details(name=name, group=group, kind=resource),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        Details(name=name, group=group, kind=resource),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        Details(name=name, group=group, kind=resource),
    )


#: apiserver's message for a resourceVersion precondition that failed.
MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[Cause] | tuple[Cause, ...]) -> ApiError:
    """422 Invalid: ``details.kind`` is the Kind (not the plural), as NewInvalid does."""
    if not causes:
        summary = "[]"
    elif len(causes) == 1:
        summary = _cause_text(causes[0])
    else:
        summary = "[" + ", ".join(_cause_text(c) for c in causes) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name}" is invalid: {summary}',
        Details(name=name, group=group, kind=kind, causes=tuple(causes)),
    )


def _cause_text(cause: Cause) -> str:
    return f"{cause.field}: {cause.message}" if cause.field else cause.message


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    what = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(403, "Forbidden", f"{what} is forbidden: {why}", Details(name=name, group=group, kind=resource))


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", Details())


def method_not_allowed(verb: str, resource: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f'{verb} is not supported on resources of kind "{resource}"', Details())


def gone(message: str) -> ApiError:
    """410 Expired: a resourceVersion or continue token older than the kept history."""
    return ApiError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> ApiError:
    accepted = "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {accepted}"
        f" (got {content_type})",
    )


def too_many_requests(message: str, retry_after_seconds: int = 1) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        message,
        Details(retry_after_seconds=retry_after_seconds),
        {"Retry-After": str(retry_after_seconds)},
    )


def internal_error(message: str) -> ApiError:
    """500 InternalError: the message says what failed, never a traceback."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", Details(causes=(Cause("", message),)))


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)


def success(name: str, group: str, kind: str, uid: str = "") -> dict[str, Any]:
    """The Status{Success} a DELETE answers with when it does not return the object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": Details(name=name, group=group, kind=kind, uid=uid).to_dict(),
    }
