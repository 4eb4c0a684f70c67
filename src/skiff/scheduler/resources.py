"""What a pod asks for and what a node offers, as integers.

CPU is counted in millicores, every other resource in whole units (bytes for
memory), as kube-scheduler's ``framework.Resource`` does.  A pod's request is
upstream's ``resource.PodRequests``: the larger of the sum over its containers
and the largest init container (sidecar init containers, restartPolicy Always,
keep running and so add to everything after them), plus the pod overhead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from skiff.api.quantity import QuantityError, parse_quantity

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

#: Upstream's non-zero defaults for scoring a container without requests (util.DefaultMilliCPURequest etc.).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Resources = dict[str, int]
Obj = dict[str, Any]


@functools.lru_cache(maxsize=8192)
def amount(name: str, text: str) -> int:
    """One quantity as an integer in the scheduler's unit for ``name``; unparsable counts as 0."""
    try:
        quantity = parse_quantity(text)
    except QuantityError:
        return 0
    return quantity.milli_value() if name == CPU else quantity.value()


def resource_list(values: Mapping[str, Any] | None) -> Resources:
    return {name: amount(name, str(text)) for name, text in (values or {}).items()}


def _add(into: Resources, more: Mapping[str, int]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value


def _max(into: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > into.get(name, 0):
            into[name] = value


def _container_requests(container: Mapping[str, Any]) -> Resources:
    return resource_list((container.get("resources") or {}).get("requests"))


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """The pod's effective requests (resource.PodRequests without in-place resize)."""
    spec = pod.get("spec") or {}
    total: Resources = {}
    for container in spec.get("containers") or []:
        _add(total, _container_requests(container))
    init_max: Resources = {}
    sidecars: Resources = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, requests)
            _max(init_max, sidecars)
        else:
            step = dict(sidecars)
            _add(step, requests)
            _max(init_max, step)
    _add(total, sidecars)
    _max(total, init_max)
    _add(total, resource_list(spec.get("overhead")))
    return {name: value for name, value in total.items() if value}


def non_zero_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(milli-CPU, memory) for scoring, each container's missing request replaced by upstream's default."""
    spec = pod.get("spec") or {}
    cpu = memory = 0
    for container in spec.get("containers") or []:
        requests = _container_requests(container)
        cpu += requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST
        memory += requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        cpu = max(cpu, requests.get(CPU) or DEFAULT_MILLI_CPU_REQUEST)
        memory = max(memory, requests.get(MEMORY) or DEFAULT_MEMORY_REQUEST)
    return cpu, memory


HostPort = tuple[str, str, int]


def host_ports(pod: Mapping[str, Any]) -> list[HostPort]:
    """(hostIP, protocol, hostPort) for every container port with a hostPort (init containers included)."""
    spec = pod.get("spec") or {}
    ports: list[HostPort] = []
    containers: Iterable[Mapping[str, Any]] = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for container in containers:
        for port in container.get("ports") or []:
            number = port.get("hostPort") or 0
            if number > 0:
                ports.append((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP", int(number)))
    return ports


def ports_conflict(wanted: HostPort, used: set[HostPort]) -> bool:
    """True when ``wanted`` collides with a used port (0.0.0.0 collides with every address)."""
    ip, protocol, port = wanted
    if ip == "0.0.0.0":
        return any(p == port and proto == protocol for _, proto, p in used)
    return (ip, protocol, port) in used or ("0.0.0.0", protocol, port) in used
