"""Who the request being served is for, as upstream carries the user in the request context.

The HTTP layer sets ``CURRENT_USER`` once it has authenticated a request; the
registry reads it where Kubernetes' storage reads ``request.UserFrom(ctx)``:
admission attributes (NodeRestriction), a CSR's requester, RBAC's escalation
check.  A ContextVar because every request is served in its own task, so the
value never leaks between requests; writes made outside a request (the API
server's own bootstrap) see None.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Protocol


class RequestUser(Protocol):
    """The parts of the apiserver's UserInfo the registry reads."""

    @property
    def name(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def extra(self) -> Mapping[str, tuple[str, ...]]: ...


CURRENT_USER: ContextVar[RequestUser | None] = ContextVar("skiff_request_user", default=None)


def current_user() -> RequestUser | None:
    return CURRENT_USER.get()
