"""Endpoints computation: which pods, which list (ready or not), which ports."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.controllers.endpoints_pods import find_port, should_pod_be_in_endpoints
from skiff.controllers.endpoints_subsets import (
    HEADLESS_LABEL,
    compute_subsets,
    endpoints_labels,
    needs_update,
    truncate_subsets,
)


def pod(
    name: str,
    ip: str | None = "127.16.0.5",
    ready: bool = True,
    ports: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": extra.pop("phase", "Running"),
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if extra.pop("terminating", False):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: dict[str, Any] = {
        "nodeName": "n1",
        "containers": [{"name": "c", "ports": ports or [{"name": "http", "containerPort": 8080}]}],
        **extra,
    }
    return {"metadata": meta, "spec": spec, "status": status}


def service(ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "labels": {"tier": "front"}},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}] if ports is None else ports,
            **spec,
        },
    }


def address(name: str, ip: str) -> dict[str, Any]:
    return {
        "ip": ip,
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"uid-{name}"},
    }


WEB_PORT = [{"name": "web", "port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("svc", "pods", "expected"),
    [
        pytest.param(
            service(),
            [pod("b", "127.16.0.6"), pod("a", "127.16.0.5", ready=False)],
            [
                {
                    "addresses": [address("b", "127.16.0.6")],
                    "notReadyAddresses": [address("a", "127.16.0.5")],
                    "ports": WEB_PORT,
                }
            ],
            id="ready-and-not-ready",
        ),
        pytest.param(
            service(publishNotReadyAddresses=True),
            [pod("a", "127.16.0.5", ready=False)],
            [{"addresses": [address("a", "127.16.0.5")], "ports": WEB_PORT}],
            id="publish-not-ready",
        ),
        pytest.param(service(), [pod("a", None)], [], id="no-ip-yet"),
        pytest.param(service(), [pod("a", terminating=True)], [], id="terminating-left-out"),
        pytest.param(service(), [pod("a", restartPolicy="Never", phase="Succeeded")], [], id="finished-never-restarts"),
        pytest.param(
            service(),
            [pod("a", ports=[{"name": "other", "containerPort": 9}])],
            [],
            id="named-port-missing",
        ),
        pytest.param(
            service(ports=[{"name": "web", "port": 80, "targetPort": 9090}]),
            [pod("a")],
            [{"addresses": [address("a", "127.16.0.5")], "ports": [{"name": "web", "port": 9090, "protocol": "TCP"}]}],
            id="numeric-target-port",
        ),
        pytest.param(
            service(ports=[{"port": 80}]),
            [pod("a")],
            [{"addresses": [address("a", "127.16.0.5")], "ports": [{"port": 80, "protocol": "TCP"}]}],
            id="no-target-port-uses-port",
        ),
        pytest.param(
            service(ports=[], clusterIP="None"),
            [pod("a")],
            [{"addresses": [address("a", "127.16.0.5")]}],
            id="headless-without-ports",
        ),
        pytest.param(
            service(),
            [pod("a", "127.16.0.5"), pod("b", "127.16.0.6", ports=[{"name": "http", "containerPort": 8081}])],
            [
                {"addresses": [address("a", "127.16.0.5")], "ports": WEB_PORT},
                {
                    "addresses": [address("b", "127.16.0.6")],
                    "ports": [{"name": "web", "port": 8081, "protocol": "TCP"}],
                },
            ],
            id="named-port-differs-per-pod",
        ),
    ],
)
def test_compute_subsets(svc: dict[str, Any], pods: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert compute_subsets(svc, pods) == expected


def test_hostname_under_matching_subdomain() -> None:
    (subset,) = compute_subsets(service(), [pod("a", hostname="a0", subdomain="web")])
    assert subset["addresses"][0]["hostname"] == "a0"


@pytest.mark.parametrize(
    ("restart", "phase", "terminating", "include", "expected"),
    [
        pytest.param("Always", "Succeeded", False, False, True, id="always-restarts"),
        pytest.param("OnFailure", "Failed", False, False, True, id="onfailure-failed-restarts"),
        pytest.param("OnFailure", "Succeeded", False, False, False, id="onfailure-succeeded"),
        pytest.param("Never", "Failed", False, False, False, id="never-failed"),
        pytest.param("Always", "Running", True, False, False, id="terminating"),
        pytest.param("Always", "Running", True, True, True, id="terminating-included"),
    ],
)
def test_should_pod_be_in_endpoints(restart: str, phase: str, terminating: bool, include: bool, expected: bool) -> None:
    p = pod("a", restartPolicy=restart, phase=phase, terminating=terminating)
    assert should_pod_be_in_endpoints(p, include_terminating=include) is expected


def test_find_port_respects_protocol() -> None:
    p = pod("a", ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None


def test_labels_and_update_check() -> None:
    headless = service(clusterIP="None")
    assert endpoints_labels(headless) == {"tier": "front", HEADLESS_LABEL: ""}
    assert endpoints_labels(service()) == {"tier": "front"}
    subsets = compute_subsets(service(), [pod("a")])
    current = {"metadata": {"labels": {"tier": "front"}, "annotations": {"x": "y"}}, "subsets": subsets}
    assert not needs_update(current, subsets, {"tier": "front"})
    assert needs_update(current, [], {"tier": "front"})
    assert needs_update(current, subsets, {"tier": "back"})


def test_truncation_keeps_ready_addresses_first() -> None:
    ready = [{"ip": f"127.16.0.{i}"} for i in range(4)]
    not_ready = [{"ip": f"127.16.1.{i}"} for i in range(3)]
    subsets = [{"addresses": ready, "notReadyAddresses": not_ready, "ports": WEB_PORT}]
    assert truncate_subsets(subsets, 10) == (subsets, False)
    kept, truncated = truncate_subsets(subsets, 5)
    assert truncated
    assert kept == [{"addresses": ready, "notReadyAddresses": not_ready[:1], "ports": WEB_PORT}]
