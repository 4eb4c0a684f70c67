"""A Service's cluster IP and node ports: taken before the write, given back when no longer used.

Upstream's service REST (pkg/registry/core/service/storage, alloc.go) in the
shape of ``WriteHooks``:

* create: ``clusterIP`` unset or "" → the next free address; a requested
  address → taken if free and in range, else 422 ``spec.clusterIPs: Invalid
  value: []string{"…"}: failed to allocate IP …: <why>``; "None" → headless,
  nothing taken; ExternalName → nothing.  NodePort and LoadBalancer services
  (unless ``allocateLoadBalancerNodePorts: false``) get a node port per port
  that has none; a requested one must be free and in range (422 on
  ``spec.ports[i].nodePort``).  The same node port may serve two protocols.
* update: a change to or from ExternalName takes or frees the address; node
  ports follow type and port changes.  New values are freed if the write
  fails, dropped values once it succeeded.
* delete: everything the service held is freed.

``repair`` is upstream's repair controllers in one pass: values held by no
service (and older than a grace period, so an allocation whose service
write is still in flight in another API server is not taken away) are
freed, and values a service uses that are not recorded are recorded.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from skiff.api import field_errors as fe
from skiff.api.status import Cause, internal_error, invalid
from skiff.registry.allocators import (
    NODE_PORTS_PREFIX,
    SERVICE_IPS_PREFIX,
    AllocationError,
    IPRange,
    PortRange,
    RangeFull,
    StoreAllocator,
)
from skiff.registry.metadata import utc_now
from skiff.registry.resource import Obj
from skiff.registry.write_hooks import Finish
from skiff.store.protocol import Store

log = logging.getLogger(__name__)

#: How old an unowned allocation must be before the repair pass frees it.
REPAIR_GRACE = timedelta(seconds=60)
IP_EXAMPLE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def owner_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return bool(spec.get("type", "ClusterIP") != "ExternalName")


def needs_node_ports(spec: dict[str, Any]) -> bool:
    kind = spec.get("type", "ClusterIP")
    return bool(
        kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)
    )


def cluster_ips(spec: dict[str, Any]) -> list[str]:
    """The addresses a service holds (headless "None" holds none)."""
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [str(ip) for ip in ips if ip and ip != "None"] if needs_cluster_ip(spec) else []


def node_ports(spec: dict[str, Any]) -> set[int]:
    if not needs_node_ports(spec):
        return set()
    return {int(p["nodePort"]) for p in spec.get("ports") or [] if isinstance(p, dict) and _is_port(p.get("nodePort"))}


def _is_port(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _go_strings(values: Iterable[str]) -> str:
    """Go's ``%#v`` of a []string, how field.Invalid shows clusterIPs."""
    return "[]string{" + ", ".join(fe.go_quote(v) for v in values) + "}"


@dataclass
class _Taken:
    """What one begin_* call took, to give back if the write fails."""

    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


class ServiceAllocations:
    """The ``WriteHooks`` of services."""

    def __init__(
        self,
        store: Store,
        cidr: str,
        node_port_range: str,
        *,
        ip_allocator: StoreAllocator | None = None,
        port_allocator: StoreAllocator | None = None,
    ) -> None:
        self.ip_range = IPRange(cidr)
        self.port_range = PortRange(node_port_range)
        self.ips = ip_allocator or StoreAllocator(store, SERVICE_IPS_PREFIX, self.ip_range)
        self.ports = port_allocator or StoreAllocator(store, NODE_PORTS_PREFIX, self.port_range)

    # -- hooks ------------------------------------------------------------------------------------
    async def begin_create(self, obj: Obj, dry_run: bool) -> Finish:
        spec = obj.get("spec")
        taken = _Taken()
        if not isinstance(spec, dict):
            return self._finisher(taken, _Taken(), owner_of(obj))
        try:
            if needs_cluster_ip(spec):
                await self._allocate_ip(obj, spec, taken, dry_run)
            if needs_node_ports(spec):
                await self._allocate_node_ports(obj, spec, set(), taken, dry_run)
        except BaseException:
            await self._give_back(taken, owner_of(obj))
            raise
        return self._finisher(taken, _Taken(), owner_of(obj))

    async def begin_update(self, new: Obj, old: Obj, dry_run: bool) -> Finish:
        new_spec, old_spec = new.get("spec"), old.get("spec") or {}
        taken, dropped = _Taken(), _Taken()
        if not isinstance(new_spec, dict):
            return self._finisher(taken, dropped, owner_of(new))
        try:
            old_ips = cluster_ips(old_spec)
            if needs_cluster_ip(new_spec) and not needs_cluster_ip(old_spec):  # leaving ExternalName
                await self._allocate_ip(new, new_spec, taken, dry_run)
            dropped.ips = [ip for ip in old_ips if ip not in cluster_ips(new_spec)]
            held = node_ports(old_spec)
            if needs_node_ports(new_spec):
                await self._allocate_node_ports(new, new_spec, held, taken, dry_run)
            dropped.ports = sorted(held - node_ports(new_spec))
        except BaseException:
            await self._give_back(taken, owner_of(new))
            raise
        if dry_run:
            dropped = _Taken()
        return self._finisher(taken, dropped, owner_of(new))

    async def after_delete(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        await self._give_back(_Taken(cluster_ips(spec), sorted(node_ports(spec))), owner_of(obj))

    def _finisher(self, taken: _Taken, dropped: _Taken, owner: str) -> Finish:
        async def finish(ok: bool) -> None:
            await self._give_back(dropped if ok else taken, owner)

        return finish

    async def _give_back(self, what: _Taken, owner: str) -> None:
        for ip in what.ips:
            await self.ips.release(ip, owner)
        for port in what.ports:
            await self.ports.release(str(port), owner)

    # -- cluster IPs ----------------------------------------------------------------------------
    async def _allocate_ip(self, obj: Obj, spec: dict[str, Any], taken: _Taken, dry_run: bool) -> None:
        requested = spec.get("clusterIP") or ((spec.get("clusterIPs") or [""])[0])
        if requested == "None":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
            return
        owner = owner_of(obj)
        if not requested:
            try:
                ip = await self.ips.allocate_next(owner, dry_run=dry_run)
            except RangeFull as err:
                raise internal_error(f"failed to allocate a serviceIP: {err}") from None
        else:
            ip = str(requested)
            self._check_ip_format(obj, ip)
            try:
                if dry_run:
                    if not await self.ips.is_free(ip):
                        raise AllocationError(self.ip_range.allocated_message())
                else:
                    await self.ips.allocate(ip, owner)
            except AllocationError as err:
                message = f"Invalid value: {_go_strings([ip])}: failed to allocate IP {ip}: {err}"
                cause = Cause(fe.INVALID, message, "spec.clusterIPs")
                raise invalid("Service", "", _name(obj), [cause]) from None
        if not dry_run:
            taken.ips.append(ip)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    @staticmethod
    def _check_ip_format(obj: Obj, ip: str) -> None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise invalid("Service", "", _name(obj), [fe.invalid("spec.clusterIPs[0]", ip, IP_EXAMPLE)]) from None
        if address.version != 4:
            raise invalid(
                "Service",
                "",
                _name(obj),
                [fe.invalid("spec.clusterIPs[0]", ip, "expected an IPv4 value as indicated by `ipFamilies[0]`")],
            )

    # -- node ports ----------------------------------------------------------------------------
    async def _allocate_node_ports(
        self, obj: Obj, spec: dict[str, Any], held: set[int], taken: _Taken, dry_run: bool
    ) -> None:
        owner = owner_of(obj)
        mine = set(held)  # one node port may serve several protocols of the same service
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        for i, port in enumerate(ports):
            wanted = port.get("nodePort")
            if _is_port(wanted):
                if wanted in mine:
                    continue
                await self._take_port(obj, i, int(wanted), owner, dry_run)
                mine.add(int(wanted))
                if not dry_run:
                    taken.ports.append(int(wanted))
                continue
            try:
                value = int(await self.ports.allocate_next(owner, dry_run=dry_run))
            except RangeFull as err:
                raise internal_error(f"failed to allocate a nodePort: {err}") from None
            port["nodePort"] = value
            mine.add(value)
            if not dry_run:
                taken.ports.append(value)

    async def _take_port(self, obj: Obj, index: int, wanted: int, owner: str, dry_run: bool) -> None:
        try:
            if dry_run:
                if not await self.ports.is_free(str(wanted)):
                    raise AllocationError(self.port_range.allocated_message())
            else:
                await self.ports.allocate(str(wanted), owner)
        except AllocationError as err:
            cause = fe.invalid(f"spec.ports[{index}].nodePort", wanted, str(err))
            raise invalid("Service", "", _name(obj), [cause]) from None

    # -- repair --------------------------------------------------------------------------------
    async def repair(self, services: Iterable[Obj], now: datetime | None = None) -> None:
        """One pass of upstream's repair controllers over every service."""
        now = now or utc_now()
        used_ips: dict[str, str] = {}
        used_ports: dict[str, str] = {}
        for svc in services:
            spec = svc.get("spec") or {}
            for ip in cluster_ips(spec):
                used_ips[ip] = owner_of(svc)
            for port in node_ports(spec):
                used_ports[str(port)] = owner_of(svc)
        await self._repair_one(self.ips, used_ips, now)
        await self._repair_one(self.ports, used_ports, now)

    @staticmethod
    async def _repair_one(allocator: StoreAllocator, used: dict[str, str], now: datetime) -> None:
        held = await allocator.allocated()
        for value, holder in held.items():
            if value in used or not _older_than(holder.since, now, REPAIR_GRACE):
                continue
            if await allocator.release_if_unchanged(value, holder.mod_revision):
                log.info("repair: freed %s%s, held by %s without a service", allocator.prefix, value, holder.owner)
        for value, owner in used.items():
            if value in held:
                continue
            try:
                await allocator.allocate(value, owner)
                log.info("repair: recorded %s%s used by %s", allocator.prefix, value, owner)
            except AllocationError as err:
                log.warning("repair: %s used by %s cannot be recorded: %s", value, owner, err)


def _older_than(since: str, now: datetime, grace: timedelta) -> bool:
    try:
        taken = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - taken > grace


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
