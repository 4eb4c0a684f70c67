"""Keeps the cluster DNS table in line with Services and EndpointSlices.

Each change recomputes the records of the one Service it concerns, right in
the informer callback (cheap: the size of one Service and its slices), so a
new Service resolves as soon as this process has seen it.
"""

from __future__ import annotations

from skiff.client.informer import Informer
from skiff.proxy.dns_records import DnsTable, service_records
from skiff.proxy.endpoints import Obj
from skiff.proxy.proxier import SLICE_INDEX, slice_index


class DnsSync:
    def __init__(self, services: Informer, slices: Informer, table: DnsTable) -> None:
        self._services = services
        self._slices = slices
        self.table = table
        slices.add_index(SLICE_INDEX, slice_index)
        services.add_handler(self._on_service, lambda _old, new: self._on_service(new), self._on_service)
        slices.add_handler(self._on_slice, self._on_slice_update, self._on_slice)

    def _on_service(self, service: Obj) -> None:
        meta = service.get("metadata") or {}
        self.refresh(f"{meta.get('namespace') or 'default'}/{meta.get('name')}")

    def _on_slice(self, endpoint_slice: Obj) -> None:
        for key in slice_index(endpoint_slice):
            self.refresh(key)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        keys = set(slice_index(old)) | set(slice_index(new))
        for key in sorted(keys):
            self.refresh(key)

    def refresh(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self._services.get(key)
        if service is None:
            self.table.set_service((namespace, name), [])
            return
        slices = self._slices.by_index(SLICE_INDEX, key)
        self.table.set_service((namespace, name), service_records(service, slices, self.table.zone))
