"""What a pod contributes to a Service's endpoints: pure functions, no I/O.

Shared by the Endpoints and EndpointSlice controllers.  Upstream:
``podutil.IsPodReady``, ``endpointutil.ShouldPodBeInEndpoints`` and
``podutil.FindPort`` (pkg/api/v1/pod, pkg/controller/util/endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True (podutil.IsPodReady)."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """status.podIPs, falling back to status.podIP."""
    status = pod.get("status") or {}
    ips = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: has an IP, not terminating (unless asked), not finished for good.

    A pod whose restartPolicy means it will never run again once it has
    finished (Never: any terminal phase; OnFailure: Succeeded) is left out.
    """
    if not pod_ips(pod):
        return False
    if not include_terminating and is_terminating(pod):
        return False
    phase = (pod.get("status") or {}).get("phase")
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The container port a service port targets on this pod (podutil.FindPort), or None.

    An integer targetPort (or none: the service port itself) is used as is; a
    named targetPort is looked up among the containers' ports with the same
    protocol.
    """
    target = service_port.get("targetPort")
    if target is None or target == "":
        return int(service_port.get("port", 0)) or None
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def target_ref(pod: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
    }


def pod_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> str | None:
    """The DNS hostname a pod gets under a headless Service: spec.hostname when subdomain == service name."""
    spec = pod.get("spec") or {}
    svc_meta = service.get("metadata") or {}
    same_ns = (pod.get("metadata") or {}).get("namespace") == svc_meta.get("namespace")
    if spec.get("hostname") and spec.get("subdomain") == svc_meta.get("name") and same_ns:
        return str(spec["hostname"])
    return None


def is_headless(service: Mapping[str, Any]) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def service_selector(service: Mapping[str, Any]) -> dict[str, str] | None:
    """The service's selector, None when it has none (endpoints then belong to the user)."""
    selector = (service.get("spec") or {}).get("selector")
    return dict(selector) if selector else None


def selector_matches(selector: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())
