"""Strategic merge patch, applied the way k8s.io/apimachinery/pkg/util/strategicpatch does.

``merge(original, patch, schema)`` follows StrategicMergeMapPatch with the
apiserver's options (MergeParallelList and IgnoreUnmatchedNulls on):

* maps merge key by key; ``null`` deletes a key;
* a list with strategy ``merge`` and a merge key merges its maps by that key;
  with ``merge`` and no key it is a set of primitives (union, deduplicated);
  any other list is replaced whole;
* ``$patch: replace`` / ``$patch: delete`` in a map, and ``$patch: delete`` /
  ``$patch: replace`` elements in a merged list;
* ``$retainKeys``, ``$setElementOrder/<field>`` and
  ``$deleteFromPrimitiveList/<field>``;
* merged lists keep upstream's order: ``$setElementOrder`` first, then the
  patch's order, then the live object's (normalizeElementOrder).

Values new to the object are taken from the patch without their nulls and
directives.  Both inputs are mutated: callers pass copies.  Failures raise
``SmpError`` carrying the HTTP code the apiserver answers with
(interpretStrategicMergePatchError): 400 for malformed directives, 422 for
lists of lists; upstream answers the rest with a reason-less 500, which
Skiff turns into 400 BadRequest with upstream's text (bad input is never a
5xx here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skiff.api.field_errors import go_format
from skiff.api.patch_schema import FieldStrategy, KindSchema

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

# mergepatch's error texts.
BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
NO_LIST_OF_LISTS = "lists of lists are not supported"


class SmpError(Exception):
    """A patch the strategic merge cannot apply; ``code`` is the apiserver's HTTP status for it."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def merge(original: dict[str, Any], patch: dict[str, Any], schema: KindSchema) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` (both mutated) and return the result."""
    return _merge_map(original, patch, "", schema)


# --- helpers that mirror Go's dynamic typing -------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON kind Go's reflect.TypeOf would tell apart (ints and floats both count as numbers)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    return type(value).__name__


def _go_type(value: Any) -> str:
    return {
        "nil": "<nil>",
        "bool": "bool",
        "string": "string",
        "map": "map[string]interface {}",
        "slice": "[]interface {}",
    }.get(_kind(value), "int64" if isinstance(value, int) else "float64")


def _same(a: Any, b: Any) -> bool:
    """Go's ``==`` on two decoded JSON scalars: same kind and same value."""
    return _kind(a) == _kind(b) and a == b


def _bad_arg_type(expected: str, actual: Any) -> SmpError:
    return SmpError(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: Any, merge_key: str) -> SmpError:
    return SmpError(f"map: {go_format(item)} does not contain declared merge key: {merge_key}")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _strategy(field: FieldStrategy) -> str:
    """extractRetainKeysPatchStrategy: drop ``retainKeys``, keep the other strategy."""
    others = [s for s in field.strategies if s != "retainKeys"]
    if len(field.strategies) > 2 or len(others) > 1:
        raise SmpError(f"unexpected patch strategy: {go_format(list(field.strategies))}")
    return others[0] if others else ""


def _fresh(value: Any) -> tuple[Any, bool]:
    """A patch value new to the object: nulls and directives dropped (discardNullValuesFromPatch +
    removeDirectives); a map carrying ``$patch`` is dropped whole, as upstream does."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out = {}
        for key, item in value.items():
            if item is None or _is_directive_key(key):
                continue
            new, keep = _fresh(item)
            if keep:
                out[key] = new
        return out, True
    if isinstance(value, list):
        kept = [_fresh(item) for item in value]
        return [new for new, keep in kept if keep], True
    return value, True


def _is_directive_key(key: str) -> bool:
    return key == RETAIN_KEYS or key.startswith((SET_ELEMENT_ORDER + "/", DELETE_FROM_PRIMITIVE_LIST + "/"))


def _extract_key(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise SmpError(BAD_PRIMITIVE_LIST if prefix == DELETE_FROM_PRIMITIVE_LIST else BAD_SET_ELEMENT_ORDER, 400)
    return rest


# --- maps ------------------------------------------------------------------------------------


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], path: str, schema: KindSchema) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            replaced: dict[str, Any] = _fresh(patch)[0]
            return replaced
        if directive == "delete":
            return {}
        raise SmpError(f"unknown patch type: {go_format(directive)} in map: {go_format(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, path, schema)
    for key, patch_value in list(patch.items()):
        is_delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if is_delete_list:
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not is_delete_list:
                new, keep = _fresh(patch_value)
                if keep:
                    original[key] = new
                else:
                    original.pop(key, None)
            continue
        child = _child(path, key)
        current = original[key]
        if isinstance(current, dict):
            if _strategy(schema.lookup(child)) == "replace":
                original[key] = _fresh(patch_value)[0]
            else:
                original[key] = _merge_map(current, patch_value, child, schema)
        elif isinstance(current, list):
            original[key] = _merge_slice_handler(current, patch_value, child, schema, is_delete_list)
        else:
            original[key] = patch_value
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """``$retainKeys``: keep only the listed keys of the live map; the patch may set no others."""
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise SmpError(BAD_RETAIN_KEYS, 400)
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if not any(_same(key, kept) for kept in retain):
            raise SmpError(BAD_RETAIN_KEYS, 400)
    for key in list(original):
        if not any(_same(key, kept) for kept in retain):
            del original[key]


def _merge_set_element_order(original: dict[str, Any], patch: dict[str, Any], path: str, schema: KindSchema) -> None:
    """mergePatchIntoOriginal: merge each list named by a ``$setElementOrder`` and put it in that order."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        list_key = _extract_key(key, SET_ELEMENT_ORDER)
        found_original, found_patch = list_key in original, list_key in patch
        original_list, patch_list = original.get(list_key), patch.get(list_key)
        if found_original and not isinstance(original_list, list):
            raise _bad_arg_type("[]interface {}", original_list)
        if found_patch and not isinstance(patch_list, list):
            raise _bad_arg_type("[]interface {}", patch_list)
        child = _child(path, list_key)
        field = schema.lookup(child)
        merge_key = field.merge_key
        _validate_against_order(patch_list or [], order, merge_key)
        if found_original and found_patch:
            assert isinstance(original_list, list) and isinstance(patch_list, list)
            merged = _merge_slice_handler(original_list, patch_list, child, schema, False)
        elif found_original:
            merged = list(original_list or [])
        elif found_patch:
            merged = _fresh(patch_list)[0]
        else:
            continue
        if not merged and not original_list and not patch_list:
            # Upstream errors here ("no elements in any of the given slices"); an empty list is what was meant.
            original[list_key] = merged
            patch.pop(list_key, None)
            continue
        kind = _element_kind(original_list or [], patch_list or [])
        if merge_key:
            in_order, server_only = _partition_maps(merged, order, merge_key)
        else:
            in_order, server_only = _partition_primitives(merged, order)
        original[list_key] = _normalize_element_order(
            in_order, server_only, order, original_list or [], merge_key, kind
        )
        patch.pop(list_key, None)


def _validate_against_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list must follow the ``$setElementOrder`` list's relative order (deletions aside)."""
    if not order or not patch_list:
        return
    items = _split_deletions(patch_list)[0] if merge_key else patch_list
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if isinstance(items[pi], dict) and DIRECTIVE in items[pi]:
            pi += 1
            continue
        if _merge_key_equal(items[pi], order[oi], merge_key):
            pi += 1
        oi += 1
    if pi < len(items) and oi >= len(order):
        raise SmpError(
            f"the order in patch list:\n{go_format(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER} list:\n{go_format(order)}"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _same(left, right)
    for side in (left, right):
        if not isinstance(side, dict):
            raise _bad_arg_type("map[string]interface {}", side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _same(left[merge_key], right[merge_key])


# --- lists -----------------------------------------------------------------------------------


def _merge_slice_handler(
    original: list[Any], patch: Any, path: str, schema: KindSchema, is_delete_list: bool
) -> list[Any]:
    if not isinstance(patch, list):
        raise _bad_arg_type("[]interface {}", patch)
    field = schema.lookup(path)
    if _strategy(field) == "merge" or is_delete_list:
        return _merge_slice(original, patch, path, field.merge_key, schema, is_delete_list)
    replaced: list[Any] = _fresh(patch)[0]
    return replaced


def _merge_slice(
    original: list[Any], patch: list[Any], path: str, merge_key: str, schema: KindSchema, is_delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            return [item for item in original if not any(_same(item, gone) for gone in patch)]
        merged = _dedupe(original + patch)
        patch_items, server_only = _partition_primitives(merged, patch)
        return _normalize_element_order(patch_items, server_only, patch, original, "", kind)
    if not merge_key:
        raise SmpError(f"cannot merge lists without merge key for {path}")
    original, patch = _apply_list_directives(original, patch, merge_key)
    merged = _merge_by_key(original, patch, merge_key, f"{path}[]", schema)
    patch_items, server_only = _partition_maps(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


def _element_kind(*lists: list[Any]) -> str:
    """sliceElementType: every element the same kind, and no lists of lists."""
    kind = ""
    for items in lists:
        for item in items:
            current = _kind(item)
            if not kind:
                if current == "slice":
                    raise SmpError(NO_LIST_OF_LISTS, 422)
                kind = current
            elif current != kind:
                raise SmpError(f"list element types are not identical: {go_format(list(lists))}")
    if not kind:
        raise SmpError("no elements in any of the given slices")
    return kind


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(_same(item, seen) for seen in out):
            out.append(item)
    return out


def _apply_list_directives(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """mergeSliceWithSpecialElements: ``$patch: delete`` removes by key, ``$patch: replace`` replaces."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [o for o in original if not (merge_key in o and _same(o[merge_key], item[merge_key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise SmpError("merging lists cannot yet be specified in the patch")
        else:
            raise SmpError(f"unknown patch type: {go_format(directive)} in map: {go_format(item)}")
    if replace:
        return [_fresh(item)[0] for item in plain], []
    return original, plain


def _merge_by_key(
    original: list[Any], patch: list[Any], merge_key: str, element_path: str, schema: KindSchema
) -> list[Any]:
    """mergeSliceWithoutSpecialElements: merge maps whose keys match, append the others."""
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find_by_key(merged, merge_key, item[merge_key])
        if index >= 0:
            merged[index] = _merge_map(merged[index], item, element_path, schema)
        else:
            merged.append(_merge_map({}, item, element_path, schema))
    return merged


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SmpError(f"value for key {i} is not a map")
        if merge_key in item and _same(item[merge_key], value):
            return i
    return -1


def _partition_primitives(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    inside = [i for i in items if any(_same(i, b) for b in by)]
    outside = [i for i in items if not any(_same(i, b) for b in by)]
    return inside, outside


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (inside if _find_by_key(by, merge_key, item[merge_key]) >= 0 else outside).append(item)
    return inside, outside


# --- ordering (normalizeElementOrder) --------------------------------------------------------


def _index(items: list[Any], value: Any, merge_key: str, kind: str) -> int:
    def key_of(item: Any) -> Any:
        if kind == "map":
            return item.get(merge_key) if isinstance(item, dict) else None
        return item

    wanted = key_of(value)
    for i, item in enumerate(items):
        if _same(key_of(item), wanted):
            return i
    return -1


def _split_deletions(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """extractToDeleteItems: (items to keep, ``$patch: delete`` items)."""
    keep: list[Any] = []
    delete: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        (delete if item.get(DIRECTIVE) == "delete" else keep).append(item)
    return keep, delete


def _go_insertion_sort(items: list[Any], less: Callable[[Any, Any], bool]) -> list[Any]:
    """Go's sort.SliceStable on small inputs: insertion sort, so a lopsided ``less`` acts as in Go."""
    out = list(items)
    for i in range(1, len(out)):
        j = i
        while j > 0 and less(out[j], out[j - 1]):
            out[j], out[j - 1] = out[j - 1], out[j]
            j -= 1
    return out


def _normalize_slice_order(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    deletions: list[Any] = []
    if kind == "map":
        for item in [*items, *order]:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        items, deletions = _split_deletions(items)

    def less(a: Any, b: Any) -> bool:
        ia = _index(order, a, merge_key, kind)
        if ia >= 0:
            ib = _index(order, b, merge_key, kind)
            if ib >= 0:
                return ia < ib
        return True

    return _go_insertion_sort(items, less) + deletions


def _normalize_element_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str,
) -> list[Any]:
    """Patch items in patch order, live-only items in live order, interleaved by their live positions."""
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            out.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            out.append(server_only[i])
            i += 1
        else:
            li = _index(server_order, server_only[i], merge_key, kind)
            ri = _index(server_order, patch_items[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(patch_items[j])
                j += 1
    return out
