"""PersistentVolumes (core/v1): Retain and Filesystem by default, Pending on create, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy

#: GetAccessModesAsString's short forms, in its fixed order.
ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: Any) -> str:
    present = set(modes or [])
    return ",".join(short for mode, short in ACCESS_MODES if mode in present)


class PersistentVolumeStrategy(SpecStatusStrategy):
    tracks_generation = False
    columns = (
        NAME_COLUMN,
        Column("Capacity", description="capacity is the description of the persistent volume's resources "
                               "and capacity."),
        Column("Access Modes", description="accessModes contains all ways the volume can be mounted."),
        Column("Reclaim Policy", description="persistentVolumeReclaimPolicy defines what happens to a persistent "
               "volume when released from its claim."),
        Column("Status", description="phase indicates if a volume is available, bound to a claim, or "
                             "released by a claim."),
        Column("Claim", description="claimRef is part of a bi-directional binding between PersistentVolume and "
               "PersistentVolumeClaim."),
        Column("StorageClass", description="StorageClass of the pv"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        Column("Reason", description="reason is a brief CamelCase string that describes any failure."),
        AGE_COLUMN,
        Column("VolumeMode", priority=1, description="volumeMode defines if a volume is intended to be used with "
               "a formatted filesystem or to remain in raw block state."),
    )  # fmt: skip

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        claim = spec.get("claimRef")
        phase = "Terminating" if (obj.get("metadata") or {}).get("deletionTimestamp") else status.get("phase") or ""
        return [
            str((spec.get("capacity") or {}).get("storage") or "0"),
            access_modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy") or "",
            phase,
            f"{claim.get('namespace', '')}/{claim.get('name', '')}" if isinstance(claim, dict) else "",
            storage_class(obj),
            spec.get("volumeAttributesClassName") or "<unset>",
            status.get("reason") or "",
            spec.get("volumeMode") or "<unset>",
        ]


def storage_class(obj: Obj) -> str:
    """GetPersistentVolume(Claim)Class: the beta annotation wins over spec.storageClassName."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    beta = annotations.get("volume.beta.kubernetes.io/storage-class")
    if beta is not None:
        return str(beta)
    return str((obj.get("spec") or {}).get("storageClassName") or "")
