"""What a request addresses: Kubernetes' RequestInfo, parsed from method, path and query.

Follows k8s.io/apiserver's RequestInfoFactory:

* ``/api/v1/...`` is the core group, ``/apis/{group}/{version}/...`` a named one;
* ``namespaces/{ns}/{resource}/...`` scopes to a namespace, but
  ``/api/v1/namespaces/{name}`` (and its ``status`` / ``finalize`` subresources)
  addresses the Namespace object itself;
* ``{resource}/{name}/{subresource}`` — anything past the subresource is kept in
  ``extra`` (proxy paths);
* the verb comes from the method: GET → get/list (watch with ``watch=true|1``,
  or the legacy ``/watch/`` prefix), POST → create, PUT → update, PATCH →
  patch, DELETE → delete/deletecollection.

Pure: no I/O, no knowledge of which resources exist (routing decides that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Subresources of a namespace that stay on the namespace (upstream ``namespaceSubresources``).
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})

Verb = Literal["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]

_METHOD_VERBS: dict[str, tuple[Verb, Verb]] = {
    # method: (verb with a name, verb without)
    "GET": ("get", "list"),
    "HEAD": ("get", "list"),
    "POST": ("create", "create"),
    "PUT": ("update", "update"),
    "PATCH": ("patch", "patch"),
    "DELETE": ("delete", "deletecollection"),
}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One resource request; ``namespace`` is "" for cluster scope or all namespaces."""

    verb: Verb
    group: str
    version: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    extra: tuple[str, ...] = ()
    #: True when the request came through the deprecated ``/watch/`` prefix.
    legacy_watch: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def is_watch_param(value: str | None) -> bool:
    """``watch=true`` or ``watch=1`` (what Kubernetes' query decoder accepts as a true bool)."""
    return value is not None and value.lower() in ("true", "1")


def parse_resource_path(method: str, path: str, watch_param: str | None = None) -> RequestInfo | None:
    """The RequestInfo of a resource path, or None for anything else (discovery, /version, ...).

    Discovery paths (``/api``, ``/api/v1``, ``/apis/g/v`` with no resource) also
    give None: the caller serves them separately.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api" and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    legacy_watch = False
    if rest and rest[0] == "watch":
        legacy_watch, rest = True, rest[1:]
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
        else:
            # The Namespace object itself: it is cluster-scoped.
            namespace = ""
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    extra = tuple(rest[3:])
    verbs = _METHOD_VERBS.get(method.upper())
    if verbs is None:
        return None
    verb: Verb = verbs[0] if name else verbs[1]
    if method.upper() in ("GET", "HEAD") and (legacy_watch or is_watch_param(watch_param)):
        verb = "watch"
    return RequestInfo(
        verb=verb,
        group=group,
        version=version,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
        extra=extra,
        legacy_watch=legacy_watch,
    )
