"""Each controller's ServiceAccount (``--use-service-account-credentials``): named, bound to a role, used.

Every controller names the account upstream's controller uses (ControllerSpec.service_account),
and the bootstrap policy has its ``system:controller:<account>`` ClusterRole bound to
``kube-system/<account>`` (upstream's, or Skiff's own in skiff-roles.yaml): a controller added
without one would run with no rights at all under ``skiff up``.
"""

from __future__ import annotations

from typing import cast

import pytest

from skiff.apiserver.rbac_bootstrap import bootstrap_policy
from skiff.client import ApiClient
from skiff.controllers.manager import ControllerManager, ControllerSpec, discover_specs

SPECS = discover_specs()

#: kube-controller-manager's ClientBuilder names for the controllers Skiff shares with it.
UPSTREAM_ACCOUNTS = {
    "clusterrole-aggregation": "clusterrole-aggregation-controller",
    "cronjob": "cronjob-controller",
    "csrapproving": "certificate-controller",
    "csrcleaner": "certificate-controller",
    "csrsigning": "certificate-controller",
    "daemonset": "daemon-set-controller",
    "deployment": "deployment-controller",
    "disruption": "disruption-controller",
    "endpoint": "endpoint-controller",
    "endpointslice": "endpointslice-controller",
    "garbagecollector": "generic-garbage-collector",
    "job": "job-controller",
    "namespace": "namespace-controller",
    "nodeipam": "node-controller",
    "nodelifecycle": "node-controller",
    "podgc": "pod-garbage-collector",
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replication-controller",
    "resourcequota": "resourcequota-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "serviceaccount": "service-account-controller",
    "statefulset": "statefulset-controller",
    "taint-eviction-controller": "node-controller",
}


def test_controllers_use_upstreams_account_names() -> None:
    named = {spec.name: spec.service_account for spec in SPECS if spec.name in UPSTREAM_ACCOUNTS}
    assert named == UPSTREAM_ACCOUNTS


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_controller_account_has_a_bound_controller_role(spec: ControllerSpec) -> None:
    assert spec.service_account, f"{spec.name} names no ServiceAccount"
    policy = bootstrap_policy()
    role = f"system:controller:{spec.service_account}"
    assert role in {r["metadata"]["name"] for r in policy.cluster_roles}
    binding = next(b for b in policy.cluster_role_bindings if b["metadata"]["name"] == role)
    account = {"kind": "ServiceAccount", "name": spec.service_account, "namespace": "kube-system"}
    assert account in binding["subjects"]


async def test_manager_gives_each_controller_its_accounts_client() -> None:
    root = cast(ApiClient, object())
    account_clients: dict[str, object] = {}

    async def accounts(name: str) -> ApiClient:
        return cast(ApiClient, account_clients.setdefault(name, object()))

    def spec(name: str, account: str | None) -> ControllerSpec:
        return ControllerSpec(name, lambda _: None, service_account=account)  # type: ignore[arg-type,return-value]

    manager = ControllerManager(root, [], service_account_clients=accounts)
    job = await manager.client_for(spec("job", "job-controller"))
    assert job is account_clients["job-controller"]
    assert await manager.client_for(spec("other", None)) is root
    assert await ControllerManager(root, []).client_for(spec("job", "job-controller")) is root
