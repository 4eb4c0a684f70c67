"""The three PATCH bodies the apiserver accepts besides server-side apply.

* ``apply_json_patch`` — RFC 6902 (``application/json-patch+json``), through
  the ``jsonpatch`` library, with one leniency of the apiserver's
  evanphx/json-patch v4: ``replace`` of a missing object member sets it.
  As upstream's handlers/patch.go answers: a body
  that is not a list of operation objects is 400; more than 10 000 operations
  is 413; any failure while applying (a failed ``test``, a missing path, an
  unknown op) is 422 Invalid with the generic "the server rejected our request
  due to an error in our request" (kopf relies on the 422).
* ``apply_merge_patch`` — RFC 7386 (``application/merge-patch+json``), with
  evanphx/json-patch's null pruning; a patch that is not an object is 400.
* ``apply_strategic_merge_patch`` — Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``) for built-in kinds, driven by
  ``skiff.api.patch_schema``; see ``skiff.api.strategic_merge``.

All three leave their inputs untouched and return a new document.
"""

from __future__ import annotations

from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import jsonpointer  # type: ignore[import-untyped]

from skiff.api import strategic_merge
from skiff.api.copying import deep_copy
from skiff.api.patch_schema import KindSchema
from skiff.api.status import ApiError, Details, bad_request, too_large

#: handlers/patch.go maxJSONPatchOperations.
MAX_JSON_PATCH_OPERATIONS = 10000

#: The message NewGenericServerResponse gives a 422.
_UNPROCESSABLE = "the server rejected our request due to an error in our request"

_GO_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _unmarshal_error(value: Any, go_type: str) -> ApiError:
    """encoding/json's complaint when the body has the wrong JSON type."""
    kind = _GO_JSON_KIND.get(type(value), "null")
    return bad_request(f"json: cannot unmarshal {kind} into Go value of type {go_type}")


def unprocessable() -> ApiError:
    """NewGenericServerResponse(422, …): reason Invalid, generic message, empty details."""
    return ApiError(422, "Invalid", _UNPROCESSABLE, Details())


def apply_json_patch(doc: Any, patch_ops: Any) -> Any:
    """Apply an RFC 6902 operation list to a copy of ``doc``."""
    if patch_ops is None:
        patch_ops = []  # Go decodes null into an empty patch
    if not isinstance(patch_ops, list):
        raise _unmarshal_error(patch_ops, "jsonpatch.Patch")
    for op in patch_ops:
        if not isinstance(op, dict):
            raise _unmarshal_error(op, "jsonpatch.Operation")
    if len(patch_ops) > MAX_JSON_PATCH_OPERATIONS:
        raise too_large(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch_ops)}"
        )
    result = deep_copy(doc)
    try:
        for op in patch_ops:
            result = jsonpatch.JsonPatch([_as_applied_upstream(result, op)]).apply(result, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
        # A failed test, a missing path, an unknown op or a malformed operation: upstream answers 422.
        raise unprocessable() from None
    return result


def _as_applied_upstream(doc: Any, op: dict[str, Any]) -> dict[str, Any]:
    """The operation the way the apiserver's evanphx/json-patch v4 applies it.

    v4 looks a key up in an object without failing when it is absent, so
    ``replace`` of a missing member of an existing object sets it, like
    ``add``.  ``kubectl rollout undo`` relies on it: it replaces
    ``/metadata/annotations`` whether or not the Deployment has any.
    """
    path = op.get("path")
    if op.get("op") != "replace" or not isinstance(path, str) or not path:
        return op
    try:
        pointer = jsonpointer.JsonPointer(path)
        parent = jsonpointer.JsonPointer.from_parts(pointer.parts[:-1]).resolve(doc)
    except jsonpointer.JsonPointerException:
        return op
    if isinstance(parent, dict) and pointer.parts[-1] not in parent:
        return {**op, "op": "add"}
    return op


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch to a copy of ``doc`` (gopkg.in/evanphx/json-patch.v4 MergePatch)."""
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    if not isinstance(doc, dict):
        raise bad_request("Invalid JSON Document")
    out = deep_copy(doc)
    _merge_docs(out, deep_copy(patch))
    return out


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        elif not isinstance(doc[key], dict):
            doc[key] = _prune_nulls(value)
        elif isinstance(value, dict):
            _merge_docs(doc[key], value)
        else:
            doc[key] = value


def _prune_nulls(value: Any) -> Any:
    """Drop null members of objects, at any depth (nulls inside arrays stay, as upstream)."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def apply_strategic_merge_patch(doc: dict[str, Any], patch: Any, schema: KindSchema) -> dict[str, Any]:
    """Apply a strategic merge patch to a copy of ``doc`` using ``schema`` (from patch_schema)."""
    if patch is None:
        return deep_copy(doc)
    if not isinstance(patch, dict):
        raise _unmarshal_error(patch, "map[string]interface {}")
    try:
        return strategic_merge.merge(deep_copy(doc), deep_copy(patch), schema)
    except strategic_merge.SmpError as err:
        if err.code == 400:
            raise bad_request(err.message) from None
        if err.code == 422:
            raise unprocessable() from None
        # Upstream passes these on as a reason-less 500; bad input is never a 5xx here: 400 with its text.
        raise bad_request(err.message) from None
