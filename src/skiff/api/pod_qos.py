"""A pod's QoS class (k8s.io/kubernetes pkg/apis/core/v1/helper/qos GetPodQOS), a pure function of its spec.

The pod strategy writes it into ``status.qosClass``; resource quota's
BestEffort / NotBestEffort scopes ask it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.quantity import Quantity, QuantityError, parse_quantity

#: The two compute resources the QoS class looks at (qos.supportedQoSComputeResources).
QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: Mapping[str, Any]) -> str:
    """GetPodQOS: BestEffort / Guaranteed / Burstable from cpu and memory requests and limits.

    A request missing where a limit is set counts as the limit, as defaulting
    makes it, so the answer does not depend on whether defaults ran first.
    Unparsable quantities are ignored here (validation reports them).
    """
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            resources = (container.get("resources") or {}) if isinstance(container, dict) else {}
            c_limits = _nonzero(resources.get("limits"))
            c_requests = {**c_limits, **_nonzero(resources.get("requests"))}
            for name, amount in c_requests.items():
                requests[name] = requests[name] + amount if name in requests else amount
            for name, amount in c_limits.items():
                limits[name] = limits[name] + amount if name in limits else amount
            if set(c_limits) != set(QOS_RESOURCES):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _nonzero(amounts: Any) -> dict[str, Quantity]:
    """The positive cpu/memory quantities of a requests or limits map."""
    out: dict[str, Quantity] = {}
    for name, text in (amounts or {}).items() if isinstance(amounts, dict) else ():
        if name not in QOS_RESOURCES:
            continue
        try:
            amount = parse_quantity(text)
        except QuantityError:
            continue
        if not amount.is_zero:
            out[name] = amount
    return out
