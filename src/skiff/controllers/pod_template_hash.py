"""The ``pod-template-hash`` label: a short, stable name for a pod template.

Upstream controller.ComputeHash: FNV-1a (32 bit) over the template, then the
collision count as 8 little-endian bytes when set, and the decimal digits of
the sum mapped through rand.SafeEncodeString's alphabet (no vowels, no
look-alikes).  Go hashes a spew dump of the struct; we hash the canonical
JSON (sorted keys, compact), so the value differs from Kubernetes' for the
same template but has the same properties: stable across processes and
restarts, different for different templates, and changed by ``collisionCount``.

Templates are compared *ignoring* the hash label (EqualIgnoreHash), so an RS
whose template equals the Deployment's is its new ReplicaSet whatever its hash.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes, start: int = _FNV_OFFSET) -> int:
    value = start
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each byte to a character of a vowel-free alphabet."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in text.encode())


def semantic(value: Any) -> Any:
    """``value`` with nulls and empty maps/lists dropped, recursively: Go reads absent and null alike.

    kubectl sends ``metadata.creationTimestamp: null`` inside templates (rollout
    undo copies a ReplicaSet's template back) while the controller does not;
    both mean the same template.
    """
    if isinstance(value, Mapping):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def compute_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    data = json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode()
    value = fnv32a(data)
    if collision_count is not None:
        value = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(8, "little"), value)
    return safe_encode(str(value))


def without_hash(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``template`` without the pod-template-hash label (and without an emptied labels map)."""
    out = copy.deepcopy(dict(template or {}))
    meta = out.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
        meta["labels"].pop(POD_TEMPLATE_HASH_LABEL, None)
        if not meta["labels"]:
            del meta["labels"]
    if isinstance(meta, dict) and not meta:
        del out["metadata"]
    return out


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """EqualIgnoreHash: the templates are the same apart from the pod-template-hash label."""
    return bool(semantic(without_hash(a)) == semantic(without_hash(b)))
