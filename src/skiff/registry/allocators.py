"""Cluster-IP and node-port allocation, persisted in the Store one key per allocated value.

Upstream keeps a bitmap per range in one etcd key (``/registry/ranges/...``)
updated with compare-and-swap.  Here every allocated value is its own key,
``/registry/ranges/serviceips/<ip>`` or ``/registry/ranges/servicenodeports/<port>``,
taken with the Store's create-if-absent: ``KeyExists`` means someone else
holds it.  So two requests, in one process or in several API servers, can
never hold the same value, and allocations survive restarts.  The value of a
key records the owner (``namespace/name``) and when it was taken, which the
repair pass uses to free leaked values (see ``service_allocation``).

Dynamic allocation follows upstream's static-subrange rule
(ServiceIPStaticSubrange, ServiceNodePortStaticSubrange): the lower band of
a range is left for explicitly requested values and used only when the upper
band is full.  Within a band a random free value is chosen.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from skiff.registry.metadata import format_time, utc_now
from skiff.store.errors import Conflict, KeyExists, KeyNotFound
from skiff.store.protocol import Store
from skiff.store.types import Range, prefix_end

RANGES_PREFIX = "/registry/ranges/"
SERVICE_IPS_PREFIX = RANGES_PREFIX + "serviceips/"
NODE_PORTS_PREFIX = RANGES_PREFIX + "servicenodeports/"

#: Skiff's default --service-cluster-ip-range: inside 127.0.0.0/8, clear of per-node pod /24s below it.
DEFAULT_SERVICE_CIDR = "127.254.0.0/16"
#: kube-apiserver's default --service-node-port-range.
DEFAULT_NODE_PORT_RANGE = "30000-32767"
#: Random picks tried before falling back to reading every allocated key.
RANDOM_TRIES = 4


class AllocationError(Exception):
    """Why a value cannot be taken; ``str()`` is upstream's wording."""


class Allocated(AllocationError):
    pass


class NotInRange(AllocationError):
    pass


class RangeFull(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class ValueRange:
    """The values of a range as offsets 0..size-1, and the static (lower) band."""

    size: int
    band: int

    def offset(self, value: str) -> int | None:
        raise NotImplementedError

    def value(self, offset: int) -> str:
        raise NotImplementedError

    def not_in_range(self, value: str) -> NotInRange:
        raise NotImplementedError

    def allocated_message(self) -> str:
        raise NotImplementedError


def static_band(size: int, minimum: int, step: int, maximum: int) -> int:
    """calculateRangeOffset: ``min(max(minimum, size / step), maximum)`` but never the whole range."""
    band = min(max(minimum, size // step), maximum)
    return band if band < size else 0


class IPRange(ValueRange):
    """The usable addresses of an IPv4 CIDR (network and broadcast excluded), as upstream's ipallocator."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=True)
        if self.network.num_addresses < 4:
            raise ValueError(f"service CIDR {cidr} is too small")
        self.base = int(self.network.network_address) + 1
        self.size = self.network.num_addresses - 2
        self.band = static_band(self.size, 16, 16, 256)

    def offset(self, value: str) -> int | None:
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            return None
        offset = int(address) - self.base
        return offset if 0 <= offset < self.size else None

    def value(self, offset: int) -> str:
        return str(ipaddress.IPv4Address(self.base + offset))

    def first(self) -> str:
        """The address of the ``kubernetes`` service (upstream's 10.96.0.1)."""
        return self.value(0)

    def not_in_range(self, value: str) -> NotInRange:
        return NotInRange(
            f"the provided IP ({value}) is not in the valid range. The range of valid IPs is {self.network}"
        )

    def allocated_message(self) -> str:
        return "provided IP is already allocated"


class PortRange(ValueRange):
    """``low-high`` inclusive, as --service-node-port-range."""

    def __init__(self, spec: str) -> None:
        low, _, high = spec.partition("-")
        self.low, self.high = int(low), int(high or low)
        if not 0 < self.low <= self.high < 65536:
            raise ValueError(f"invalid port range {spec!r}")
        self.size = self.high - self.low + 1
        self.band = static_band(self.size, 16, 32, 128)

    def offset(self, value: str) -> int | None:
        if not value.isdigit():
            return None
        offset = int(value) - self.low
        return offset if 0 <= offset < self.size else None

    def value(self, offset: int) -> str:
        return str(self.low + offset)

    def not_in_range(self, value: str) -> NotInRange:
        return NotInRange(
            f"provided port is not in the valid range. The range of valid ports is {self.low}-{self.high}"
        )

    def allocated_message(self) -> str:
        return "provided port is already allocated"


@dataclass(frozen=True, slots=True)
class Holder:
    owner: str
    since: str
    mod_revision: int


class StoreAllocator:
    """Take and release values of one range; every method is safe against concurrent callers."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        values: ValueRange,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.values = values
        self.rng = rng or random.Random()
        self.clock = clock

    def _key(self, value: str) -> bytes:
        return (self.prefix + value).encode()

    def _record(self, owner: str) -> bytes:
        return json.dumps({"owner": owner, "since": format_time(self.clock())}).encode()

    def check(self, value: str) -> None:
        """Raise NotInRange unless ``value`` belongs to the range."""
        if self.values.offset(value) is None:
            raise self.values.not_in_range(value)

    async def allocate(self, value: str, owner: str) -> None:
        """Take ``value`` for ``owner`` (Allocated if held, NotInRange if outside)."""
        self.check(value)
        try:
            await self.store.create(self._key(value), self._record(owner))
        except KeyExists:
            raise Allocated(self.values.allocated_message()) from None

    async def is_free(self, value: str) -> bool:
        self.check(value)
        return await self.store.get(self._key(value)) is None

    async def allocate_next(self, owner: str, *, dry_run: bool = False) -> str:
        """A free value, taken for ``owner`` unless ``dry_run`` (then only found); RangeFull when none."""
        size, band = self.values.size, self.values.band
        bands = [(band, size), (0, band)] if band else [(0, size)]
        for _ in range(RANDOM_TRIES):
            low, high = bands[0]
            value = self.values.value(self.rng.randrange(low, high))
            if await self._try_take(value, owner, dry_run):
                return value
        while True:
            taken = set(await self.allocated())
            for low, high in bands:
                candidates = [o for o in range(low, high) if self.values.value(o) not in taken]
                if candidates:
                    break
            else:
                raise RangeFull()
            value = self.values.value(self.rng.choice(candidates))
            if await self._try_take(value, owner, dry_run):
                return value

    async def _try_take(self, value: str, owner: str, dry_run: bool) -> bool:
        if dry_run:
            return await self.store.get(self._key(value)) is None
        try:
            await self.store.create(self._key(value), self._record(owner))
        except KeyExists:
            return False
        return True

    async def release(self, value: str, owner: str | None = None) -> bool:
        """Free ``value`` if held (by ``owner``, when given); True when this call freed it."""
        key = self._key(value)
        for _ in range(3):
            kv = await self.store.get(key)
            if kv is None:
                return False
            if owner is not None and _decode(kv.value).owner != owner:
                return False
            try:
                await self.store.delete(key, kv.mod_revision)
            except (Conflict, KeyNotFound):
                continue
            return True
        return False

    async def allocated(self) -> dict[str, Holder]:
        """Every held value of this range with its holder."""
        prefix = self.prefix.encode()
        out: dict[str, Holder] = {}
        start = prefix
        while True:
            result = await self.store.range(Range(key=start, range_end=prefix_end(prefix), limit=1000))
            for kv in result.kvs:
                holder = _decode(kv.value)
                out[kv.key[len(prefix) :].decode()] = Holder(holder.owner, holder.since, kv.mod_revision)
            if not result.more or not result.kvs:
                return out
            start = result.kvs[-1].key + b"\x00"

    async def release_if_unchanged(self, value: str, mod_revision: int) -> bool:
        """Free ``value`` only if nobody re-took it since ``mod_revision`` (the repair pass's delete)."""
        try:
            await self.store.delete(self._key(value), mod_revision)
        except (Conflict, KeyNotFound):
            return False
        return True


def _decode(raw: bytes) -> Holder:
    try:
        data = json.loads(raw)
        return Holder(str(data.get("owner", "")), str(data.get("since", "")), 0)
    except (ValueError, AttributeError):
        return Holder("", "", 0)
