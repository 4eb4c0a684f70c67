"""Per-namespace defaults: the "default" ServiceAccount and the kube-root-ca.crt ConfigMap.

Upstream: pkg/controller/serviceaccount (ServiceAccountsController) and
pkg/controller/certificates/rootcacertpublisher.

* Every namespace that is not terminating gets a ServiceAccount named
  ``default``; deleting it brings it back.
* Every namespace that is not terminating gets the ConfigMap
  ``kube-root-ca.crt`` whose ``ca.crt`` is the cluster CA bundle, so pods can
  verify the API server; edits are reverted.  The bundle comes from the
  ``root-ca-file`` option (kube-controller-manager's ``--root-ca-file``),
  else from the CA this process itself trusts for the API server.

Service account token Secrets/TokenRequest are not issued here (they need
the API server's token signer).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from skiff.client import ApiError, is_already_exists, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes "
    "clusters."
)


def is_namespace_active(namespace: Obj | None) -> bool:
    if namespace is None:
        return False
    if (namespace.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return bool((namespace.get("status") or {}).get("phase", "Active") != "Terminating")


def _namespace_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


class ServiceAccountsController(Controller):
    name = "serviceaccount"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.namespaces = self.informers.informer(NAMESPACES)
        self.accounts = self.informers.informer(SERVICEACCOUNTS)
        self.namespaces.add_handler(on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new))
        self.accounts.add_handler(on_delete=self._account_deleted)

    def _account_deleted(self, account: Obj) -> None:
        if (account.get("metadata") or {}).get("name") == DEFAULT_SERVICE_ACCOUNT:
            self.enqueue(_namespace_of(account))

    async def sync(self, key: str) -> None:
        if not is_namespace_active(self.namespaces.get(key)):
            return
        if self.accounts.get(f"{key}/{DEFAULT_SERVICE_ACCOUNT}") is not None:
            return
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}
        try:
            await self.client.create(SERVICEACCOUNTS, body, key)
        except ApiError as err:
            # AlreadyExists: our cache lags; NotFound/Forbidden-while-terminating: the namespace is going.
            if not (is_already_exists(err) or is_not_found(err) or err.code == 403):
                raise


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self._ca_path = context.options.get("root-ca-file") or context.client.config.ca_file
        self._ca_data: bytes | None = context.client.config.ca_data
        self.namespaces = self.informers.informer(NAMESPACES)
        self.configmaps = self.informers.informer(CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}")
        self.namespaces.add_handler(on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new))
        self.configmaps.add_handler(
            on_update=lambda old, new: self.enqueue(_namespace_of(new)),
            on_delete=lambda cm: self.enqueue(_namespace_of(cm)),
        )

    async def root_ca(self) -> str | None:
        if self._ca_path:
            self._ca_data = await asyncio.to_thread(Path(self._ca_path).read_bytes)
            self._ca_path = None
        return self._ca_data.decode() if self._ca_data else None

    async def sync(self, key: str) -> None:
        if not is_namespace_active(self.namespaces.get(key)):
            return
        ca = await self.root_ca()
        if ca is None:
            log.warning("root-ca-cert-publisher: no CA bundle configured (--root-ca-file); not publishing")
            return
        current = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        try:
            if current is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": {ROOT_CA_KEY: ca},
                }
                await self.client.create(CONFIGMAPS, body, key)
            elif (current.get("data") or {}) != {ROOT_CA_KEY: ca}:
                annotations = dict((current.get("metadata") or {}).get("annotations") or {})
                annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
                body = dict(current, data={ROOT_CA_KEY: ca})
                body["metadata"] = dict(current["metadata"], annotations=annotations)
                await self.client.update(CONFIGMAPS, body)
        except ApiError as err:
            if not (is_already_exists(err) or is_not_found(err) or err.code == 403):
                raise


CONTROLLERS = [
    ControllerSpec(
        "serviceaccount", ServiceAccountsController, workers=2, service_account="service-account-controller"
    ),
    ControllerSpec("root-ca-cert-publisher", RootCACertPublisher, workers=2, service_account="root-ca-cert-publisher"),
]
