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

Pure functions over plain JSON values.  Every write runs ``compare``, so
the walks see types through memoised nodes (``_Node``: a type's shape and
list keys worked out once, its children kept), and ``compare`` skips
subtrees that are equal to the last type (``_same``: ``==`` and the same
JSON, as dict equality and orjson both run in C) instead of descending
into them; ``decode_fields_v1`` tells whether its input is exactly the
encoding of what it decodes to, so a caller may keep it for one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections import OrderedDict
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
    return encode_fields_v1(paths)[0]


def encode_fields_v1(paths: Iterable[Path]) -> tuple[dict[str, Any], bool]:
    """``to_fields_v1``, and whether the encoding is the set's alone: no two elements under one parent
    tie in upstream's order (``k:{"port":1}`` and ``k:{"port":1.0}``), which would leave theirs to the
    order the set iterates in.
    """
    trie: dict[str, Any] = {}
    for path in paths:
        node = trie
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node["."] = True  # a member (the encoding's ``".": {}``, made by ``_emit`` where it shows)
    ties: list[str] = []
    return _emit(trie, ties), not ties


def _emit(node: dict[str, Any], ties: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    member = "." in node
    if member:
        if len(node) == 1:
            return out
        out["."] = {}
        children = [k for k in node if k != "."]
    else:
        children = list(node)
    if len(children) > 1:
        children.sort(key=element_order)
        if not children[-1].startswith("f:"):  # (fields sort first and never tie: their names differ)
            orders = [element_order(k) for k in children]
            ties.extend(
                k for k, before, after in zip(children[1:], orders, orders[1:], strict=False) if before == after
            )
    for key in children:
        child = node[key]
        out[key] = {} if len(child) == 1 and "." in child else _emit(child, ties)
    return out


_TAGS = frozenset({"f:", "k:", "v:", "i:"})


def from_fields_v1(raw: Any) -> FieldSet:
    """Decode FieldsV1; ValueError when it is not a trie of path elements."""
    return decode_fields_v1(raw)[0]


def decode_fields_v1(raw: Any) -> tuple[FieldSet, bool]:
    """``from_fields_v1``, and whether ``to_fields_v1`` of the result gives ``raw`` back exactly.

    Exactly: the same keys in the same order with the same spelling, so the
    JSON of ``raw`` is the JSON the set encodes to and ``raw`` may stand for
    its encoding (what the FieldsV1 this server wrote always is).
    """
    if not isinstance(raw, dict):
        raise ValueError("FieldsV1 must be an object")
    paths: set[Path] = set()
    canonical = _decode(raw, (), paths)
    return frozenset(paths), canonical


def _decode(node: dict[str, Any], prefix: Path, out: set[Path]) -> bool:
    canonical = True
    previous: tuple[Any, ...] | None = None
    first = True
    for key, value in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            # Emitted only first, as ``{}``, on a member with members below it (never on the root).
            if not (first and prefix and type(value) is dict and not value and len(node) > 1):
                canonical = False
            first = False
            continue
        first = False
        tag = key[:2]
        if not isinstance(value, dict) or tag not in _TAGS:
            raise ValueError(f"invalid FieldsV1 element {key!r}")
        element = key
        if tag == "k:" or tag == "v:":
            try:
                element = tag + _json(orjson.loads(key[2:]))  # canonical spelling
            except orjson.JSONDecodeError:
                raise ValueError(f"invalid FieldsV1 element {key!r}") from None
            if element != key:
                canonical = False
        if canonical:
            try:
                order = element_order(element)
                if previous is not None and not previous < order:
                    canonical = False  # out of order, or a tie the encoder may break either way
                previous = order
            except Exception:  # an element the encoder cannot order: never stands for an encoding
                canonical = False
        path = (*prefix, element)
        if not value:
            out.add(path)
        elif not _decode(value, path, out):
            canonical = False
    return canonical


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


# The walks below see a type through a ``_Node``: its ``shape_of`` mode and list keys worked out
# once and its children memoised, so a walk over an object of a kind already seen builds no types.
_LEAF, _UNTYPED, _MAP, _LIST = 0, 1, 2, 3
#: Children memoised per node besides its named fields (map keys: labels, annotations, data, ...).
_MAX_UNNAMED = 1024
#: Root types whose nodes are kept (built-in kinds' roots live for the process; a custom resource's
#: root is rebuilt for each request, so least recently used roots make room).
_MAX_ROOTS = 128


class _Node:
    """One ``FieldType`` as the walks use it."""

    __slots__ = ("_item", "defaults", "fields", "keys", "mode", "relationship", "type")

    def __init__(self, t: FieldType) -> None:
        self.type = t
        kind = t.kind
        if kind == KIND_UNTYPED:
            mode = _UNTYPED
        elif kind == KIND_MAP:
            mode = _LEAF if t.atomic else _MAP
        elif kind == KIND_LIST:
            mode = _LEAF if t.atomic else _LIST
        else:
            mode = _LEAF
        self.mode = mode
        self.fields: dict[str, tuple[_Node, bool]] = {}
        self._item: _Node | None = None
        self.relationship = ""
        self.keys: tuple[str, ...] = ()
        self.defaults: Any = {}
        if mode == _LIST:
            relationship, keys = t.list_type()
            self.relationship, self.keys, self.defaults = relationship, keys.keys, keys.defaults

    def field(self, key: str) -> tuple[_Node, bool]:
        """``FieldType.field``: the child node of ``key`` and whether it is a named field."""
        hit = self.fields.get(key)
        if hit is None:
            child, named = self.type.field(key)
            hit = (_Node(child), named)
            if named or len(self.fields) < _MAX_UNNAMED:
                self.fields[key] = hit
        return hit

    def item(self) -> _Node:
        if self._item is None:
            self._item = _Node(self.type.item())
        return self._item

    def element(self, item: Any, index: int) -> str:
        """``item_element`` for this (granular) list."""
        relationship = self.relationship
        if relationship == LIST_SET:
            return value_element(item)
        if relationship == LIST_MAP and isinstance(item, dict):
            fields: dict[str, Any] = {}
            for key in self.keys:
                if key in item:
                    fields[key] = item[key]
                elif key in self.defaults:
                    fields[key] = self.defaults[key]
            return key_element(fields)
        return f"i:{index}"


_ROOTS: OrderedDict[int, _Node] = OrderedDict()


def _node(t: FieldType) -> _Node:
    """The node of a root type (kept, with everything memoised below it, while ``t`` is in use)."""
    node = _ROOTS.get(id(t))
    if node is not None and node.type is t:  # (it holds ``t``: the id is its own while it is kept)
        with contextlib.suppress(KeyError):  # (a thread evicted it meanwhile: no matter)
            _ROOTS.move_to_end(id(t))
        return node
    node = _ROOTS[id(t)] = _Node(t)
    while len(_ROOTS) > _MAX_ROOTS:
        with contextlib.suppress(KeyError):
            _ROOTS.popitem(last=False)
    return node


def _shape(mode: int, old: Any, new: Any = MISSING) -> int:
    """``shape_of`` for a node's mode."""
    if mode == _LEAF:
        return _LEAF
    old_present = old is not MISSING and old is not None
    new_present = new is not MISSING and new is not None
    if mode == _LIST:
        if (old_present and not isinstance(old, list)) or (new_present and not isinstance(new, list)):
            return _LEAF
        return _LIST
    if (old_present and not isinstance(old, dict)) or (new_present and not isinstance(new, dict)):
        return _LEAF
    if mode == _UNTYPED and not (old_present or new_present):
        return _LEAF
    return _MAP


def field_set(value: Any, t: FieldType) -> FieldSet:
    """The fields ``value`` sets (ToFieldSet); the root itself is never a member."""
    out: set[Path] = set()
    _collect(value, _node(t), (), out)
    return frozenset(out)


def _collect(value: Any, node: _Node, path: Path, out: set[Path]) -> None:
    shape = _shape(node.mode, value)
    if shape == _LEAF:
        if path:
            out.add(path)
        return
    if shape == _LIST:
        item_node = node.item()
        for index, item in enumerate(value or []):
            child = (*path, node.element(item, index))
            _collect(item, item_node, child, out)
            out.add(child)
        return
    for key, item in (value or {}).items():
        child_node, named = node.field(key)
        child = (*path, "f:" + key)
        _collect(item, child_node, child, out)
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
    _compare(old, new, _node(t), (), result)
    return result


def _leaf(old: Any, new: Any, path: Path, c: Comparison) -> None:
    if old is MISSING:
        c.added.add(path)
    elif new is MISSING:
        c.removed.add(path)
    elif old != new or type(old) is not type(new):
        c.modified.add(path)


_JSON_SCALARS = (str, int, float, bool, type(None))
_CONTAINERS = (dict, list)
#: JSON only: anything else (subclasses of the JSON types among it) fails to serialize.
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _same(old: Any, new: Any) -> bool:
    """Equal to the last type: ``_compare`` of the two could find no difference (and is skipped).

    ``==`` alone would not do (``1 == 1.0 == True``, which the walk's leaves tell apart); equal
    containers whose JSON is the same are (orjson refuses subclasses of the JSON types, datetimes and
    dataclasses here: False, so walked).  What JSON cannot carry is taken to be absent: NaN, which the
    walk finds changed even against itself, and enum members, which orjson writes as their values.
    The objects diffed are decoded from JSON (the stored one always), so neither occurs.
    """
    kind = type(old)
    if kind is not type(new):
        return False
    if kind is dict or kind is list:
        if old != new:
            return False
        try:
            return orjson.dumps(old, option=_STRICT) == orjson.dumps(new, option=_STRICT)
        except TypeError:
            return False
    return kind in _JSON_SCALARS and old == new


def _compare(old: Any, new: Any, node: _Node, path: Path, c: Comparison) -> None:
    shape = _shape(node.mode, old, new)
    if shape == _MAP:
        left = old if isinstance(old, dict) else {}
        right = new if isinstance(new, dict) else {}
        if not left and not right:
            _leaf(old, new, path, c)  # empty or null on both sides: a leaf, so {} vs null shows
            return
        fields = node.fields
        for key, before in left.items():
            after = right.get(key, MISSING)
            if after is MISSING:
                _gone(before, (fields.get(key) or node.field(key))[0], (*path, "f:" + key), c.removed)
            elif _same(before, after):
                continue
            elif isinstance(before, _CONTAINERS) or isinstance(after, _CONTAINERS):
                _compare(before, after, (fields.get(key) or node.field(key))[0], (*path, "f:" + key), c)
            else:
                _leaf(before, after, (*path, "f:" + key), c)  # what any node makes of two scalars
        for key, after in right.items():
            if key not in left:
                _gone(after, (fields.get(key) or node.field(key))[0], (*path, "f:" + key), c.added)
    elif shape == _LIST:
        left_items = _index(old if isinstance(old, list) else [], node)
        right_items = _index(new if isinstance(new, list) else [], node)
        if not left_items and not right_items:
            _leaf(old, new, path, c)
            return
        item_node = node.item()
        for element, before in left_items.items():
            after = right_items.get(element, MISSING)
            if after is MISSING:
                _gone(before, item_node, (*path, element), c.removed)
            elif not _same(before, after):
                _compare(before, after, item_node, (*path, element), c)
        for element, after in right_items.items():
            if element not in left_items:
                _gone(after, item_node, (*path, element), c.added)
    else:
        _leaf(old, new, path, c)
        return
    if path and old is MISSING:
        c.added.add(path)
    elif path and new is MISSING:
        c.removed.add(path)


def _gone(value: Any, node: _Node, path: Path, out: set[Path]) -> None:
    """``_compare`` of a value present on one side only: it and everything below it, into ``out``."""
    out.add(path)
    mode = node.mode
    if mode == _LEAF or not value:
        return
    if isinstance(value, dict):
        if mode != _LIST:
            fields = node.fields
            for key, item in value.items():
                if isinstance(item, _CONTAINERS) and item:
                    _gone(item, (fields.get(key) or node.field(key))[0], (*path, "f:" + key), out)
                else:
                    out.add((*path, "f:" + key))  # a scalar, or empty: nothing below it, whatever its type
    elif isinstance(value, list) and mode == _LIST:
        item_node = node.item()
        for element, item in _index(value, node).items():
            _gone(item, item_node, (*path, element), out)


def _index(items: list[Any], node: _Node) -> dict[str, Any]:
    """Items by path element; a repeated element keeps its first item (upstream ignores repeats)."""
    out: dict[str, Any] = {}
    for index, item in enumerate(items):
        out.setdefault(node.element(item, index), item)
    return out


def with_named_parents(paths: FieldSet, root: FieldType) -> FieldSet:
    """EnsureNamedFieldsAreMembers: every named field above a member becomes a member too."""
    out = set(paths)
    top = _node(root)
    for path in paths:
        node = top
        for depth, element in enumerate(path[:-1]):
            if element.startswith("f:"):
                node, named = node.field(element[2:])
            else:
                node, named = node.item(), False
            if named:
                out.add(path[: depth + 1])
    return frozenset(out)


def remove_paths(value: Any, paths: FieldSet, t: FieldType) -> Any:
    """A copy of ``value`` without the subtrees at ``paths`` (containers emptied by it are dropped)."""
    if not paths:
        return copy.deepcopy(value)
    prefixes = {p[:i] for p in paths for i in range(1, len(p))}
    return _remove(value, _node(t), (), paths, prefixes)


def _remove(value: Any, node: _Node, path: Path, paths: FieldSet, prefixes: set[Path]) -> Any:
    shape = _shape(node.mode, value)
    if shape == _MAP and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = (*path, "f:" + key)
            if child in paths:
                continue
            if child in prefixes:
                kept = _remove(item, node.field(key)[0], child, paths, prefixes)
                if _emptied(item, kept):
                    continue
                out[key] = kept
            else:
                out[key] = copy.deepcopy(item)
        return out
    if shape == _LIST and isinstance(value, list):
        items: list[Any] = []
        item_node = node.item()
        for index, item in enumerate(value):
            child = (*path, node.element(item, index))
            if child in paths:
                continue
            items.append(_remove(item, item_node, child, paths, prefixes) if child in prefixes else copy.deepcopy(item))
        return items
    return copy.deepcopy(value)


def _emptied(before: Any, after: Any) -> bool:
    return isinstance(before, (dict, list)) and bool(before) and not after


def exclude_prefixes(paths: FieldSet, prefixes: Iterable[Path]) -> FieldSet:
    """The paths not at or below any of ``prefixes`` (fieldpath.NewExcludeSetFilter)."""
    blocked = tuple(prefixes)
    if not blocked:
        return paths
    if () in blocked:
        return EMPTY
    # Only paths under a blocked prefix's first element can be blocked: find those first, by set lookups.
    firsts = {b[0] for b in blocked}
    candidates = [p for p in paths if p and p[0] in firsts]
    if not candidates:
        return paths
    dropped = {p for p in candidates if any(p[: len(b)] == b for b in blocked)}
    return paths - dropped if dropped else paths


def leaves(paths: FieldSet) -> Iterator[Path]:
    """Members in upstream's iteration order (sorted element by element)."""
    return iter(sorted(paths, key=path_order))
