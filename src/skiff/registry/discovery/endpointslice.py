"""EndpointSlices (discovery.k8s.io/v1): port defaults, address types, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy, immutable

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
MAX_SHOWN = 3


class EndpointSliceStrategy(ObjectStrategy):
    columns = (
        NAME_COLUMN,
        Column("AddressType", description="addressType specifies the type of address carried by this EndpointSlice."),
        Column(
            "Ports", description="ports specifies the list of network ports exposed by each endpoint in this slice."
        ),
        Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
        AGE_COLUMN,
    )

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("name", "")
                port.setdefault("protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        kind = obj.get("addressType")
        if kind is None:
            return [fe.required("addressType")]
        if kind not in ADDRESS_TYPES:
            return [fe.not_supported("addressType", kind, ADDRESS_TYPES)]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("addressType") != old.get("addressType"):
            return [immutable("addressType", new.get("addressType"))]
        return []

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        ports = []
        for port in obj.get("ports") or []:
            number = port.get("port")
            ports.append(str(number) if number is not None else (port.get("name") or "*"))
        addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
        return [obj.get("addressType") or "", _with_more(ports), _with_more(addresses)]


def _with_more(items: list[str]) -> str:
    """listWithMoreString: up to three, then "+ N more...", "<unset>" when empty."""
    text = ",".join(items[:MAX_SHOWN])
    if len(items) > MAX_SHOWN:
        return f"{text} + {len(items) - MAX_SHOWN} more..."
    return text or "<unset>"
