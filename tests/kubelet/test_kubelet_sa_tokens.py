"""Projected serviceAccountToken sources: real pod-bound tokens from a real apiserver, cached and refreshed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from apiserver_harness import RunningApiServer

from skiff.api.status import ApiError
from skiff.client import ApiClient, ClientConfig
from skiff.client.clock import FakeClock
from skiff.client.resources import PODS, SERVICEACCOUNTS
from skiff.kubelet.env import NodeResources
from skiff.kubelet.sa_tokens import TokenManager
from skiff.kubelet.volumes import VolumeError, setup_volumes

NODE = NodeResources(cpu_milli=1000, memory_bytes=1024**3)
VOLUME = {
    "name": "kube-api-access",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"serviceAccountToken": {"path": "vault-token", "audience": "vault", "expirationSeconds": 600}},
        ]
    },
}


async def _no_objects(_plural: str, _namespace: str | None, _name: str) -> dict[str, Any] | None:
    return None


async def test_projected_tokens_bound_cached_and_refreshed(apiserver: RunningApiServer, tmp_path: Path) -> None:
    async with ApiClient(ClientConfig.from_kubeconfig(apiserver.kubeconfig)) as client:
        account = await client.create(SERVICEACCOUNTS, {"metadata": {"name": "runner"}}, "default")
        pod_body = {
            "metadata": {"name": "tok-pod"},
            "spec": {"serviceAccountName": "runner", "containers": [{"name": "c", "image": "x"}], "volumes": [VOLUME]},
        }
        pod = await client.create(PODS, pod_body, "default")
        clock = FakeClock(time.time())  # starts now: the server stamps real times
        manager = TokenManager(client, clock)
        paths = await setup_volumes(pod, tmp_path / "pod", _no_objects, NODE, False, manager.token)
        token = (paths["kube-api-access"] / "token").read_text()
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "system:serviceaccount:default:runner"
        assert claims["exp"] - claims["iat"] == 3607
        assert claims["kubernetes.io"]["pod"] == {"name": "tok-pod", "uid": pod["metadata"]["uid"]}
        assert claims["kubernetes.io"]["serviceaccount"]["uid"] == account["metadata"]["uid"]
        vault = jwt.decode((paths["kube-api-access"] / "vault-token").read_text(), options={"verify_signature": False})
        assert vault["aud"] == ["vault"]

        assert await manager.token(pod, "", 3607) == token  # cached
        clock.advance(0.81 * 3607)
        assert await manager.token(pod, "", 3607) != token  # refreshed after 80% of its lifetime

        other = {**pod, "spec": {**pod["spec"], "serviceAccountName": "missing"}}
        try:
            await setup_volumes(other, tmp_path / "other", _no_objects, NODE, False, TokenManager(client).token)
        except VolumeError as err:
            assert 'failed to fetch token: serviceaccounts "missing" not found' in str(err)
        else:
            raise AssertionError("expected a VolumeError")


async def test_placeholder_only_when_not_served(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [], "volumes": [VOLUME]},
    }

    async def not_served(_pod: dict[str, Any], _audience: str, _seconds: int) -> str:
        raise ApiError(501, "NotImplemented", "not served")

    paths = await setup_volumes(pod, tmp_path / "pod", _no_objects, NODE, False, not_served)
    assert (paths["kube-api-access"] / "token").read_text() == "skiff-placeholder-token.default.ns"
