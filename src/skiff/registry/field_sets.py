"""Sets of field paths, the FieldsV1 encoding, and the walks over objects that produce them.

As sigs.k8s.io/structured-merge-diff's ``fieldpath`` and ``typed`` packages:

* A path is a tuple of elements in FieldsV1 spelling: ``f:<name>`` (a field
  or map key), ``k:<json of the key fields>`` (an item of an associative
  list, keys sorted), ``v:<json value>`` (an item of a set), ``i:<index>``
  (never produced here; accepted when decoding).  A ``FieldSet`` is a
  frozenset of paths: union, difference and intersection are Python's set
  operations, exactly as upstream's trie-shaped ``fieldpath.Set`` behaves.
* FieldsV1 is that trie as JSON: ``{"f:spec": {"f:replicas": {}}}``; a
  path that is a member *and* has members below it carries ``".": {}``.
  Elements are ordered as upstream's ``PathElement.Compare`` (fields, then
  keys, then values, then indexes).
* ``field_set`` is ``TypedValue.ToFieldSet``: scalars and atomic values
  are members; items of associative lists and keys of maps that are not
  named fields are members (with their contents below them); a named field
  is a member only when null or an empty object.
* ``compare`` is ``TypedValue.Compare``: leaves added/removed/modified, and
  every container present on one side only (which is why a newly added
  ``labels`` map is owned with ``"."``).
* ``remove_paths`` is ``RemoveItems``: drops the subtree at each path.

Pure functions over plain JSON values.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from skiff.api.field_errors import go_float, go_quote
from skiff.registry.field_types import KIND_LIST, KIND_MAP, KIND_UNTYPED, LIST_MAP, LIST_SET, FieldType

Path = tuple[str, ...]
FieldSet = frozenset[Path]

EMPTY: FieldSet = frozenset()


class _Missing:
    """An absent value (distinct from JSON null, as upstream's nil Value is from a null one)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# -- path elements ---------------------------------------------------------------------------------
def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def key_element(fields: dict[str, Any]) -> str:
    return "k:" + _json(fields)


def value_element(value: Any) -> str:
    return "v:" + _json(value)


def item_element(item: Any, index: int, list_type: FieldType) -> str:
    """The path element of one item of a set or associative list."""
    relationship, keys = list_type.list_type()
    if relationship == LIST_SET:
        return value_element(item)
    if relationship == LIST_MAP and isinstance(item, dict):
        fields: dict[str, Any] = {}
        for key in keys.keys:
            if key in item:
                fields[key] = item[key]
            elif key in keys.defaults:
                fields[key] = keys.defaults[key]
        return key_element(fields)
    return f"i:{index}"


def _value_order(value: Any) -> tuple[int, Any]:
    """structured-merge-diff's value.Compare: numbers < strings < booleans < lists < maps < null."""
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, _json(value))
    if isinstance(value, dict):
        return (4, _json(value))
    return (5, 0)


@functools.lru_cache(maxsize=4096)
def element_order(element: str) -> tuple[Any, ...]:
    """Sort key of a path element (PathElement.Compare)."""
    tag, body = element[:2], element[2:]
    if tag == "f:":
        return (0, body)
    if tag == "k:":
        fields = orjson.loads(body)
        return (1, len(fields), [(name, _value_order(v)) for name, v in sorted(fields.items())])
    if tag == "v:":
        return (2, _value_order(orjson.loads(body)))
    if tag == "i:":
        return (3, int(body) if body.lstrip("-").isdigit() else 0)
    return (4, element)


def _value_text(value: Any) -> str:
    """structured-merge-diff's value.ToString."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return "{" + ", ".join(f"{k}={_value_text(v)}" for k, v in value.items()) + "}"


def path_string(path: Path) -> str:
    """``fieldpath.Path.String``: ``.spec.containers[name="nginx"].image``."""
    out = []
    for element in path:
        tag, body = element[:2], element[2:]
        if tag == "f:":
            out.append("." + body)
        elif tag == "k:":
            fields = orjson.loads(body)
            out.append("[" + ",".join(f"{k}={_value_text(v)}" for k, v in sorted(fields.items())) + "]")
        elif tag == "v:":
            out.append("[=" + _value_text(orjson.loads(body)) + "]")
        else:
            out.append("[" + body + "]")
    return "".join(out)


def path_order(path: Path) -> tuple[tuple[Any, ...], ...]:
    return tuple(element_order(e) for e in path)


# -- FieldsV1 --------------------------------------------------------------------------------------
def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 JSON object of a set of paths (fieldpath.Set.ToJSON)."""
    trie: dict[str, Any] = {}
    for path in paths:
        node = trie
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _emit(trie)


def _emit(node: dict[str, Any]) -> dict[str, Any]:
    children = sorted((k for k in node if k != "."), key=element_order)
    out: dict[str, Any] = {}
    if "." in node and children:
        out["."] = {}
    for key in children:
        out[key] = _emit(node[key])
    return out


def from_fields_v1(raw: Any) -> FieldSet:
    """Decode FieldsV1; ValueError when it is not a trie of path elements."""
    if not isinstance(raw, dict):
        raise ValueError("FieldsV1 must be an object")
    paths: set[Path] = set()
    _decode(raw, (), paths)
    return frozenset(paths)


def _decode(node: dict[str, Any], prefix: Path, out: set[Path]) -> None:
    for key, value in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        if not isinstance(value, dict) or key[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"invalid FieldsV1 element {key!r}")
        element = key
        if key[:2] in ("k:", "v:"):
            try:
                element = key[:2] + _json(orjson.loads(key[2:]))  # canonical spelling
            except orjson.JSONDecodeError:
                raise ValueError(f"invalid FieldsV1 element {key!r}") from None
        path = (*prefix, element)
        if not value:
            out.add(path)
        else:
            _decode(value, path, out)


# -- walks over values ---------------------------------------------------------------------------
def shape_of(t: FieldType, *values: Any) -> str:
    """How to walk a node: "map", "list" (granular), or "leaf"."""
    kind = t.kind
    present = [v for v in values if v is not MISSING and v is not None]
    if kind == KIND_UNTYPED:
        return "map" if present and all(isinstance(v, dict) for v in present) else "leaf"
    if kind == KIND_MAP and not t.atomic:
        return "map" if all(isinstance(v, dict) for v in present) else "leaf"
    if kind == KIND_LIST and not t.atomic:
        return "list" if all(isinstance(v, list) for v in present) else "leaf"
    return "leaf"


def field_set(value: Any, t: FieldType) -> FieldSet:
    """The fields ``value`` sets (ToFieldSet); the root itself is never a member."""
    out: set[Path] = set()
    _collect(value, t, (), out)
    return frozenset(out)


def _collect(value: Any, t: FieldType, path: Path, out: set[Path]) -> None:
    shape = shape_of(t, value)
    if shape == "leaf":
        if path:
            out.add(path)
        return
    if shape == "list":
        item_type = t.item()
        for index, item in enumerate(value or []):
            child = (*path, item_element(item, index, t))
            _collect(item, item_type, child, out)
            out.add(child)
        return
    for key, item in (value or {}).items():
        child_type, named = t.field(key)
        child = (*path, "f:" + key)
        _collect(item, child_type, child, out)
        if item is None or item == {} or not named:
            out.add(child)


class Comparison:
    """Paths added, removed and modified between two values (typed.Comparison)."""

    def __init__(self) -> None:
        self.added: set[Path] = set()
        self.removed: set[Path] = set()
        self.modified: set[Path] = set()

    def changed(self) -> FieldSet:
        return frozenset(self.added | self.modified)


def compare(old: Any, new: Any, t: FieldType) -> Comparison:
    result = Comparison()
    _compare(old, new, t, (), result)
    return result


def _leaf(old: Any, new: Any, path: Path, c: Comparison) -> None:
    if old is MISSING:
        c.added.add(path)
    elif new is MISSING:
        c.removed.add(path)
    elif old != new or type(old) is not type(new):
        c.modified.add(path)


def _compare(old: Any, new: Any, t: FieldType, path: Path, c: Comparison) -> None:
    shape = shape_of(t, old, new)
    if shape == "map":
        left = old if isinstance(old, dict) else {}
        right = new if isinstance(new, dict) else {}
        if not left and not right:
            _leaf(old, new, path, c)  # empty or null on both sides: a leaf, so {} vs null shows
            return
        for key in [*left, *(k for k in right if k not in left)]:
            child_type, _ = t.field(key)
            _compare(left.get(key, MISSING), right.get(key, MISSING), child_type, (*path, "f:" + key), c)
    elif shape == "list":
        left_items = _index(old if isinstance(old, list) else [], t)
        right_items = _index(new if isinstance(new, list) else [], t)
        if not left_items and not right_items:
            _leaf(old, new, path, c)
            return
        item_type = t.item()
        for element in [*left_items, *(e for e in right_items if e not in left_items)]:
            _compare(
                left_items.get(element, MISSING), right_items.get(element, MISSING), item_type, (*path, element), c
            )
    else:
        _leaf(old, new, path, c)
        return
    if path and old is MISSING:
        c.added.add(path)
    elif path and new is MISSING:
        c.removed.add(path)


def _index(items: list[Any], t: FieldType) -> dict[str, Any]:
    """Items by path element; a repeated element keeps its first item (upstream ignores repeats)."""
    out: dict[str, Any] = {}
    for index, item in enumerate(items):
        out.setdefault(item_element(item, index, t), item)
    return out


def with_named_parents(paths: FieldSet, root: FieldType) -> FieldSet:
    """EnsureNamedFieldsAreMembers: every named field above a member becomes a member too."""
    out = set(paths)
    for path in paths:
        t = root
        for depth, element in enumerate(path[:-1]):
            t, named = _step(t, element)
            if named:
                out.add(path[: depth + 1])
    return frozenset(out)


def _step(t: FieldType, element: str) -> tuple[FieldType, bool]:
    if element.startswith("f:"):
        return t.field(element[2:])
    return t.item(), False


def remove_paths(value: Any, paths: FieldSet, t: FieldType) -> Any:
    """A copy of ``value`` without the subtrees at ``paths`` (containers emptied by it are dropped)."""
    if not paths:
        return copy.deepcopy(value)
    prefixes = {p[:i] for p in paths for i in range(1, len(p))}
    return _remove(value, t, (), paths, prefixes)


def _remove(value: Any, t: FieldType, path: Path, paths: FieldSet, prefixes: set[Path]) -> Any:
    shape = shape_of(t, value)
    if shape == "map" and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = (*path, "f:" + key)
            if child in paths:
                continue
            if child in prefixes:
                kept = _remove(item, t.field(key)[0], child, paths, prefixes)
                if _emptied(item, kept):
                    continue
                out[key] = kept
            else:
                out[key] = copy.deepcopy(item)
        return out
    if shape == "list" and isinstance(value, list):
        items: list[Any] = []
        item_type = t.item()
        for index, item in enumerate(value):
            child = (*path, item_element(item, index, t))
            if child in paths:
                continue
            items.append(_remove(item, item_type, child, paths, prefixes) if child in prefixes else copy.deepcopy(item))
        return items
    return copy.deepcopy(value)


def _emptied(before: Any, after: Any) -> bool:
    return isinstance(before, (dict, list)) and bool(before) and not after


def exclude_prefixes(paths: FieldSet, prefixes: Iterable[Path]) -> FieldSet:
    """The paths not at or below any of ``prefixes`` (fieldpath.NewExcludeSetFilter)."""
    blocked = tuple(prefixes)
    if not blocked:
        return paths
    return frozenset(p for p in paths if not any(p[: len(b)] == b for b in blocked))


def leaves(paths: FieldSet) -> Iterator[Path]:
    """Members in upstream's iteration order (sorted element by element)."""
    return iter(sorted(paths, key=path_order))
