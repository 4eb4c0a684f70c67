"""PersistentVolumeClaims (core/v1): Filesystem by default, Pending on create, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.core.persistentvolume import access_modes, storage_class
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy


def default_claim_spec(spec: Any) -> None:
    """SetDefaults_PersistentVolumeClaimSpec (also used by StatefulSet volumeClaimTemplates)."""
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")


class PersistentVolumeClaimStrategy(SpecStatusStrategy):
    tracks_generation = False
    columns = (
        NAME_COLUMN,
        Column("Status", description="phase represents the current phase of PersistentVolumeClaim."),
        Column("Volume", description="volumeName is the binding reference to the PersistentVolume backing this claim."),
        Column("Capacity", description="capacity represents the actual resources of the underlying volume."),
        Column("Access Modes", description="accessModes contains the actual access modes the volume backing the "
               "PVC has."),
        Column("StorageClass", description="StorageClass of the pvc"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        AGE_COLUMN,
        Column("VolumeMode", priority=1, description="volumeMode defines what type of volume is required "
                                             "by the claim."),
    )  # fmt: skip

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        default_claim_spec(obj.setdefault("spec", {}))

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        phase = "Terminating" if (obj.get("metadata") or {}).get("deletionTimestamp") else status.get("phase") or ""
        capacity = modes = ""
        if spec.get("volumeName"):
            modes = access_modes(status.get("accessModes"))
            capacity = str((status.get("capacity") or {}).get("storage") or "0")
        return [
            phase,
            spec.get("volumeName") or "",
            capacity,
            modes,
            storage_class(obj),
            spec.get("volumeAttributesClassName") or "<unset>",
            spec.get("volumeMode") or "<unset>",
        ]
