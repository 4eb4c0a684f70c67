"""The field manager of a write request: ``fieldManager``, or the User-Agent's product, as upstream.

k8s.io/apiserver endpoints/handlers:

* ``fieldManager`` is validated on create, update and patch
  (ValidateFieldManager: at most 128 bytes, printable characters) — 422
  ``CreateOptions``/``UpdateOptions``/``PatchOptions`` ``.meta.k8s.io``;
* without it, the manager is the User-Agent up to the first ``/``, without
  unprintable characters, cut to 128 bytes (``managerOrUserAgent``):
  ``kubectl.1.32/v1.32.2 (linux/amd64) …`` → ``kubectl.1.32``;
* ``force`` is only for apply patches (ValidatePatchOptions): 422
  ``force: Forbidden: may not be specified for non-apply patch``;
* server-side apply records an Apply entry, everything else an Update entry,
  with the subresource written through (``status``, ``scale``).
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.field_errors import forbidden
from skiff.api.status import invalid
from skiff.apiserver.negotiation import APPLY_PATCH
from skiff.registry.managed_fields import APPLY, UPDATE, WriteManager
from skiff.registry.validation import FIELD_MANAGER_MAX_LENGTH, go_is_print, validate_field_manager

META_GROUP = "meta.k8s.io"
_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def prefix_from_user_agent(user_agent: str) -> str:
    """prefixFromUserAgent: the product before the first '/', printable runes only, at most 128 bytes."""
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not go_is_print(ch):
            continue
        width = len(ch.encode())
        if size + width > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += width
    return "".join(out)


def force_requested(request: web.Request) -> bool:
    """PatchOptions.force (strconv.ParseBool's true spellings)."""
    return request.query.get("force", "") in _TRUE


def write_manager(request: web.Request, verb: str, subresource: str, patch_type: str = "") -> WriteManager:
    """The manager of one create/update/patch; raises 422 for bad options."""
    kind = _OPTIONS_KIND.get(verb, "PatchOptions")
    name = request.query.get("fieldManager", "")
    causes = validate_field_manager(name, "fieldManager")
    if verb == "patch" and patch_type != APPLY_PATCH and "force" in request.query:
        causes.append(forbidden("force", "may not be specified for non-apply patch"))
    if causes:
        raise invalid(kind, META_GROUP, "", causes)
    apply = verb == "patch" and patch_type == APPLY_PATCH and subresource != "scale"
    if not name:
        name = prefix_from_user_agent(request.headers.get("User-Agent", ""))
    return WriteManager(name, APPLY if apply else UPDATE, subresource)
