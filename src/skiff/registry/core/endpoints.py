"""Endpoints (core/v1): port protocol default and the "ip:port,... + N more..." table cell."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy

#: printers.go shows at most this many endpoints, then "+ N more...".
MAX_SHOWN = 3


class EndpointsStrategy(ObjectStrategy):
    allow_create_on_update = True
    columns = (
        NAME_COLUMN,
        Column("Endpoints", description="The set of all endpoints is the union of all subsets."),
        AGE_COLUMN,
    )

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in (subset.get("ports") or []) if isinstance(subset, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [format_endpoints(obj)]


def format_endpoints(obj: Obj) -> str:
    """formatEndpoints: addresses (with ports when the subset has them), at most three shown."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        pairs = (
            [(ip, None) for ip in addresses] if not ports else [(ip, p.get("port")) for p in ports for ip in addresses]
        )
        for ip, port in pairs:
            count += 1
            if len(shown) == MAX_SHOWN:
                more = True
                continue
            shown.append(ip if port is None else (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"))
    text = ",".join(shown)
    return f"{text} + {count - MAX_SHOWN} more..." if more else text
