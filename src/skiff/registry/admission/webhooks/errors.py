"""What a webhook call can end in, worded as kube-apiserver words it.

* ``CallError`` — the call failed (unreachable, timed out, a bad response):
  upstream's ``webhookutil.ErrCallingWebhook``.  The webhook's failurePolicy
  decides: ``Ignore`` goes on, ``Fail`` answers ``calling_failed`` — 500
  InternalError ``failed calling webhook "<name>": <reason>``.
* ``denied`` — the webhook answered ``allowed: false``
  (pkg/admission/plugin/webhook/errors ``ToStatusErr``): its status, with a
  code of at least 400, and the message ``admission webhook "<name>" denied
  the request: <message>``.
* ``dry_run_unsupported`` — a dry-run request met a webhook that may have
  side effects: 400, whatever the failurePolicy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.field_errors import go_quote
from skiff.api.status import ApiError, Cause, Details, bad_request, internal_error


class CallError(Exception):
    """ErrCallingWebhook: ``reason`` says what went wrong; the webhook's name is added when reported."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def calling_failed(webhook: str, err: CallError) -> ApiError:
    """failurePolicy Fail: ``apierrors.NewInternalError(ErrCallingWebhook)``."""
    return internal_error(f"failed calling webhook {go_quote(webhook)}: {err.reason}")


def dry_run_unsupported(webhook: str) -> ApiError:
    """webhookerrors.NewDryRunUnsupportedErr."""
    return bad_request(f"admission webhook {go_quote(webhook)} does not support dry run")


def denied(webhook: str, status: Mapping[str, Any] | None) -> ApiError:
    """ToStatusErr: the webhook's Status, made a failure of code >= 400 with the webhook named."""
    status = status or {}
    code = status.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    message = str(status.get("message") or "")
    reason = str(status.get("reason") or "")
    denied_by = f"admission webhook {go_quote(webhook)} denied the request"
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    return ApiError(code, reason, text, _details(status.get("details")))


def _details(details: Any) -> Details | None:
    if not isinstance(details, dict):
        return None
    causes = tuple(
        Cause(str(c.get("reason") or ""), str(c.get("message") or ""), str(c.get("field") or ""))
        for c in details.get("causes") or []
        if isinstance(c, dict)
    )
    retry = details.get("retryAfterSeconds")
    return Details(
        name=str(details.get("name") or ""),
        group=str(details.get("group") or ""),
        kind=str(details.get("kind") or ""),
        uid=str(details.get("uid") or ""),
        causes=causes,
        retry_after_seconds=retry if isinstance(retry, int) else 0,
    )
