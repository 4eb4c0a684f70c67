"""EtcdRestore objects whose cluster does not exist fail here; everything else is the cluster controller's.

A restore is a rebuild of its target cluster (``rebuild``), driven from that
cluster's reconcile so that two rebuilds of one cluster can never run at
once.  This controller only answers restores that name no EtcdCluster
(the original required one too) so that they do not wait silently forever.
"""

from __future__ import annotations

from typing import Any

from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.controllers.manager import ControllerSpec
from skiff.etcdoperator.resources import ETCDCLUSTERS, ETCDRESTORES

Obj = dict[str, Any]


class EtcdRestoreController(Controller):
    name = "etcd-restore"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.restores = self.informers.informer(ETCDRESTORES)
        self.clusters = self.informers.informer(ETCDCLUSTERS)
        self.restores.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), None)

    async def sync(self, key: str) -> None:
        restore = self.restores.get(key)
        if restore is None or (restore.get("status") or {}).get("phase"):
            return
        namespace = restore["metadata"]["namespace"]
        target = ((restore.get("spec") or {}).get("etcdCluster") or {}).get("name")
        if not target:
            reason = "spec.etcdCluster.name is required"
        elif self.clusters.get(f"{namespace}/{target}") is None:
            reason = f'EtcdCluster "{target}" not found in namespace "{namespace}"'
        else:
            return
        status = {"phase": "Failed", "succeeded": False, "reason": reason}
        try:
            await self.client.update_status(ETCDRESTORES, {**restore, "status": status})
        except ApiError as err:
            if err.code not in (404, 409):
                raise


CONTROLLERS = [ControllerSpec("etcd-restore", EtcdRestoreController)]
