"""``meta.k8s.io`` Table and PartialObjectMetadata envelopes: what ``kubectl get`` reads.

A Table is ``columnDefinitions`` plus one row per object, each row carrying its
cells and, by default (``includeObject=Metadata``), the object's metadata as a
PartialObjectMetadata — kubectl builds the NAMESPACE column, ``-L`` and
``--show-labels`` from it.  The Table carries the list's ``resourceVersion``:
``kubectl get -w`` starts its watch there.

Columns and cells are the resource's (:mod:`skiff.registry.table_format`); this
module only wraps them, as k8s.io/apiserver endpoints/handlers/response.go does.
Pure: ``now`` is passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api.status import bad_request
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.table_format import build_row, column_definitions

#: includeObject values (metav1.IncludeObjectPolicy); Metadata is the default.
INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT = "None", "Metadata", "Object"
INCLUDE_POLICIES = (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT)


def include_policy(value: str | None) -> str:
    if not value:
        return INCLUDE_METADATA
    if value not in INCLUDE_POLICIES:
        raise bad_request(f'includeObject: unsupported value "{value}"; supported: None, Metadata, Object')
    return value


def partial_object_metadata(obj: Obj, meta_version: str = "v1") -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{meta_version}",
        "metadata": obj.get("metadata", {}),
    }


def partial_object_metadata_list(items: list[Obj], list_meta: dict[str, Any], meta_version: str = "v1") -> Obj:
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"meta.k8s.io/{meta_version}",
        "metadata": list_meta,
        "items": [partial_object_metadata(o, meta_version) for o in items],
    }


def row(info: ResourceInfo, obj: Obj, now: datetime, include: str = INCLUDE_METADATA, meta_version: str = "v1") -> Obj:
    out: Obj = {"cells": build_row(info, obj, now)}
    if include == INCLUDE_METADATA:
        out["object"] = partial_object_metadata(obj, meta_version)
    elif include == INCLUDE_OBJECT:
        out["object"] = obj
    return out


def table(
    info: ResourceInfo,
    objects: list[Obj],
    list_meta: dict[str, Any],
    now: datetime,
    *,
    include: str = INCLUDE_METADATA,
    meta_version: str = "v1",
    headers: bool = True,
) -> Obj:
    """A Table of ``objects``; ``headers=False`` leaves columnDefinitions empty (watch events after the first)."""
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{meta_version}",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(info) if headers else [],
        "rows": [row(info, o, now, include, meta_version) for o in objects],
    }
