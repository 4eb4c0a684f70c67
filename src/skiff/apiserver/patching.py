"""PATCH requests: from Content-Type and body to the ``mutate`` function the registry applies.

As k8s.io/apiserver endpoints/handlers/patch.go:

* ``application/json-patch+json`` (RFC 6902): the body is a list of
  operations; more than 10,000 is 413; a failing op (``test`` mismatch,
  missing path) is 422 — raised by :func:`skiff.api.patch.apply_json_patch`.
* ``application/merge-patch+json`` (RFC 7386).
* ``application/strategic-merge-patch+json``: built-in kinds only; 415 for
  kinds without strategic-merge metadata (CRs), with upstream's message.
* ``application/apply-patch+yaml`` (server-side apply): requires
  ``fieldManager`` (422 PatchOptions, as upstream's ValidatePatchOptions);
  creates a missing object (201); merges, tracks ownership, reports
  conflicts (409) unless ``force``, and removes what the manager stopped
  applying — :mod:`skiff.registry.apply`.  Through ``/scale`` the body is a
  Scale and is merged like a merge patch (ownership recorded as an Update).

The mutate function runs inside the registry's compare-and-swap loop, so it
must be pure: it works on a copy of what it is given.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from skiff.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from skiff.api.patch_schema import schema_for, supports_strategic_merge
from skiff.api.status import ApiError, Cause, bad_request, invalid, not_found
from skiff.apiserver.bodies import check_depth, decode_json, decode_yaml
from skiff.apiserver.negotiation import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from skiff.registry.apply import apply_configuration
from skiff.registry.managed_fields import APPLY, WriteManager
from skiff.registry.resource import Obj, ResourceInfo

Mutate = Callable[[Obj | None], Obj]


def unsupported_patch_type(content_type: str, supported: list[str]) -> ApiError:
    """415 with upstream's wording (NewUnsupportedMediaTypeError lists what is accepted)."""
    accepted = ", ".join(supported)
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {accepted}",
    )


def supported_patch_types(info: ResourceInfo) -> list[str]:
    types = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    if supports_strategic_merge(info.kind, info.group):
        types.append(STRATEGIC_MERGE_PATCH)
    return types


def build_mutate(
    info: ResourceInfo,
    patch_type: str,
    body: bytes,
    field_manager: str,
    name: str,
    *,
    force: bool = False,
    subresource: str = "",
) -> Mutate:
    """The mutate function for one PATCH request; raises ApiError for bad requests up front."""
    supported = supported_patch_types(info)
    if patch_type not in supported:
        raise unsupported_patch_type(patch_type, supported)
    if patch_type == JSON_PATCH:
        ops, _ = decode_json(body)
        return _existing(info, name, lambda current: _json_patched(current, ops))
    if patch_type == APPLY_PATCH:
        if not field_manager:
            raise invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [Cause("FieldValueRequired", "Required value: is required for apply patch", "fieldManager")],
            )
        applied = _patch_object(decode_yaml(body))
        if subresource == "scale":
            return lambda current: (
                copy.deepcopy(applied) if current is None else _object(apply_merge_patch(current, applied))
            )
        who = WriteManager(field_manager, APPLY, subresource)
        return lambda current: apply_configuration(info, current, applied, who, force)
    doc = _patch_object(decode_json(body)[0])
    if patch_type == MERGE_PATCH:
        return _existing(info, name, lambda current: _object(apply_merge_patch(current, doc)))
    schema = schema_for(info.kind)
    return _existing(info, name, lambda current: apply_strategic_merge_patch(current, doc, schema))


def _patch_object(value: Any) -> Obj:
    if not isinstance(value, dict):
        raise bad_request("the body of the patch must be a JSON object")
    return value


def _object(value: Any) -> Obj:
    """A patch result must still be an object (a JSON patch may replace the root)."""
    if not isinstance(value, dict):
        raise bad_request("the patched document is not a JSON object")
    return value


def _json_patched(current: Obj, ops: Any) -> Obj:
    """Only a JSON patch can nest deeper than its body (``add`` at a deep path, ``copy`` into itself):
    its result gets the decoders' depth limit (bodies.MAX_DEPTH) again."""
    result = _object(apply_json_patch(current, ops))
    check_depth(result, "the patched object")
    return result


def _existing(info: ResourceInfo, name: str, apply: Callable[[Obj], Obj]) -> Mutate:
    """Patches other than apply need an object to patch: a missing one is 404."""

    def mutate(current: Obj | None) -> Obj:
        if current is None:
            raise not_found(info.plural, info.group, name)
        return apply(current)

    return mutate
