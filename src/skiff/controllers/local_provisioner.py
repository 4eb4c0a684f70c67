"""Local volumes for claims: a hostPath-backed PersistentVolume per claim, bound at once.

What a cluster needs so that StatefulSet volumeClaimTemplates (and plain
claims) work on one machine, in the manner of k3s's local-path provisioner,
playing both roles upstream splits in two: the external provisioner (make a
PV for a claim of our class) and the PV controller's binder (claimRef on the
PV, ``volumeName`` and phase Bound on the claim).

* Our class is ``local-path`` (provisioner ``skiff.io/local-path``), made at
  start as the default StorageClass.  Claims naming it, and claims with no
  ``storageClassName`` at all (we are the default class, and the apiserver has
  no DefaultStorageClass admission yet), are provisioned; ``""`` means "no
  dynamic provisioning" and is left alone.
* The PV is ``pvc-<claim uid>`` with ``hostPath`` ``<volume dir>/<pv name>``
  (directory made here), the claim's request as capacity, reclaim policy Delete.
* When the claim is gone, the PV is Released; Delete removes the directory and
  then the PV.

The volume directory is ``context.options["local_volume_dir"]`` (the
controller-manager's flag), by default ``DATA_DIR/volumes``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLASS_NAME = "local-path"
PROVISIONER = "skiff.io/local-path"
VOLUME_DIR_OPTION = "local_volume_dir"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
#: PV keys in the queue; "#" never appears in a namespace, so they cannot clash with claim keys.
PV_PREFIX = "#pv:"


def default_volume_dir() -> Path:
    """DATA_DIR/volumes with the default data dir (``$XDG_DATA_HOME/skiff``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff" / "volumes"


def storage_class_object() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def wants_local_volume(claim: Obj) -> bool:
    """A claim for our class (or for no class at all) that no volume serves yet."""
    spec = claim.get("spec") or {}
    if spec.get("volumeName") or (claim.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if "storageClassName" not in spec or spec["storageClassName"] is None:
        return True
    return bool(spec["storageClassName"] == CLASS_NAME)


def volume_for(claim: Obj, volume_dir: Path) -> Obj:
    """The PV provisioned for ``claim``: hostPath under ``volume_dir``, pre-bound by claimRef."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": request},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "hostPath": {"path": str(volume_dir / name), "type": "DirectoryOrCreate"},
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName") or CLASS_NAME,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


class LocalProvisioner(Controller):
    name = "local-provisioner"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.volume_dir = Path(context.options.get(VOLUME_DIR_OPTION) or default_volume_dir())
        self.recorder = context.recorder_for("skiff.io/local-path")
        self.claims = self.informers.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = self.informers.informer(PERSISTENTVOLUMES)
        self.claims.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self._on_claim_delete)
        self.volumes.add_handler(self._on_volume, lambda _old, new: self._on_volume(new), None)

    def _on_claim_delete(self, claim: Obj) -> None:
        self.enqueue(f"{PV_PREFIX}pvc-{claim['metadata'].get('uid', '')}")

    def _on_volume(self, volume: Obj) -> None:
        self.enqueue(PV_PREFIX + volume["metadata"]["name"])

    async def run(self, workers: int = 2) -> None:
        await self._ensure_storage_class()
        await super().run(workers)

    async def _ensure_storage_class(self) -> None:
        try:
            await self.client.create(STORAGECLASSES, storage_class_object())
        except ApiError as err:
            if err.code != 409:
                raise

    async def sync(self, key: str) -> None:
        if key.startswith(PV_PREFIX):
            await self._reclaim(key.removeprefix(PV_PREFIX))
            return
        claim = self.claims.get(key)
        if claim is None or not wants_local_volume(claim):
            return
        volume = volume_for(claim, self.volume_dir)
        path = Path(volume["spec"]["hostPath"]["path"])
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        name = volume["metadata"]["name"]
        try:
            volume = await self.client.create(PERSISTENTVOLUMES, volume)
        except ApiError as err:
            if err.code != 409:
                raise
            volume = await self.client.get(PERSISTENTVOLUMES, name)
        else:
            self.recorder.event(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}")
        await self._bind(claim, volume)

    async def _bind(self, claim: Obj, volume: Obj) -> None:
        """The binder's half: PV Bound, claim volumeName + annotations + status Bound."""
        name = volume["metadata"]["name"]
        if (volume.get("status") or {}).get("phase") != "Bound":
            await self.client.patch(PERSISTENTVOLUMES, name, {"status": {"phase": "Bound"}}, subresource="status")
        meta = claim["metadata"]
        annotations = {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.kubernetes.io/storage-provisioner": PROVISIONER,
            "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
        }
        patch: Obj = {
            "metadata": {"annotations": annotations, "resourceVersion": meta.get("resourceVersion")},
            "spec": {"volumeName": name},
        }
        if claim["spec"].get("storageClassName") is None:
            patch["spec"]["storageClassName"] = CLASS_NAME
        updated = await self.client.patch(PERSISTENTVOLUMECLAIMS, meta["name"], patch, meta.get("namespace"))
        status = {
            "phase": "Bound",
            "accessModes": volume["spec"]["accessModes"],
            "capacity": dict(volume["spec"]["capacity"]),
        }
        await self.client.patch(
            PERSISTENTVOLUMECLAIMS,
            meta["name"],
            {"status": status},
            updated["metadata"].get("namespace"),
            subresource="status",
        )

    async def _reclaim(self, name: str) -> None:
        """A provisioned PV whose claim is gone: Released, then (reclaim policy Delete) removed with its data."""
        volume = self.volumes.get(name)
        if volume is None or (volume["metadata"].get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            return
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not ref:
            return
        claim = self.claims.get(f"{ref.get('namespace')}/{ref.get('name')}")
        if claim is not None and claim["metadata"].get("uid") == ref.get("uid"):
            return
        try:
            live = await self.client.get(PERSISTENTVOLUMECLAIMS, str(ref.get("name")), str(ref.get("namespace")))
            if live["metadata"].get("uid") == ref.get("uid"):
                return
        except ApiError as err:
            if err.code != 404:
                raise
        if (volume["spec"].get("persistentVolumeReclaimPolicy") or "Delete") != "Delete":
            if (volume.get("status") or {}).get("phase") != "Released":
                await self.client.patch(
                    PERSISTENTVOLUMES, name, {"status": {"phase": "Released"}}, subresource="status"
                )
            return
        path = Path((volume["spec"].get("hostPath") or {}).get("path") or "")
        if path.parent == self.volume_dir:
            await asyncio.to_thread(shutil.rmtree, path, True)
        try:
            await self.client.delete(PERSISTENTVOLUMES, name)
        except ApiError as err:
            if err.code != 404:
                raise


CONTROLLERS = [ControllerSpec("local-provisioner", LocalProvisioner, workers=1, service_account="local-provisioner")]
