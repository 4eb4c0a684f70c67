"""StorageClasses (storage.k8s.io/v1): Delete/Immediate by default, immutable fields, "(default)" name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy

DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
IMMUTABLE = ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode")


class StorageClassStrategy(ObjectStrategy):
    columns = (
        NAME_COLUMN,
        Column("Provisioner", description="provisioner indicates the type of the provisioner."),
        Column("ReclaimPolicy", description="reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
               "PersistentVolumes of this storage class."),
        Column("VolumeBindingMode", description="volumeBindingMode indicates how PersistentVolumeClaims should be "
               "provisioned and bound."),
        Column("AllowVolumeExpansion", description="allowVolumeExpansion shows whether the storage class allow "
               "volume expand."),
        AGE_COLUMN,
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return [] if obj.get("provisioner") else [fe.required("provisioner")]

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for key in IMMUTABLE:
            if new.get(key) != old.get(key):
                causes.append(fe.forbidden(key, "updates to " + key + " are forbidden."))
        return causes

    def display_name(self, obj: Obj) -> str:
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        is_default = any(annotations.get(key) == "true" for key in DEFAULT_ANNOTATIONS)
        return f"{meta.get('name', '')} (default)" if is_default else str(meta.get("name", ""))

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [
            obj.get("provisioner") or "",
            obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate",
            bool(obj.get("allowVolumeExpansion")),
        ]
