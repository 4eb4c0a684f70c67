"""Concurrent clients on a few shared keys, recorded for the linearizability checker.

Each client, seeded, picks a shared key and does one of: a compare-and-swap
increment (``get``, then ``update`` at the mod revision read), a create
(``create``), or an unconditional delete (a txn, so that its revision is
known).  Values are unique
(``counter:client:seq``) so the checker can tell every write apart.  Every
call is timed with ``time.monotonic_ns`` around the await.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from linearizability import Kind, Operation, Outcome, Register

from skiff.store.errors import Conflict, KeyExists, KeyNotFound, StoreError
from skiff.store.protocol import Store
from skiff.store.types import DeleteRange, DeleteResult, Event, EventType, KeyValue


def register_of(kv: KeyValue | None) -> Register | None:
    return None if kv is None else Register(kv.value, kv.mod_revision)


@dataclass
class History:
    operations: list[Operation] = field(default_factory=list)
    writes_done: int = 0
    write_acked: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, op: Operation) -> None:
        self.operations.append(op)
        if op.kind is not Kind.READ and op.outcome is Outcome.OK:
            async with self.write_acked:
                self.writes_done += 1
                self.write_acked.notify_all()

    async def wait_for_writes(self, count: int) -> None:
        async with self.write_acked:
            await self.write_acked.wait_for(lambda: self.writes_done >= count)


async def run_client(store: Store, client: int, keys: list[bytes], n_ops: int, seed: int, history: History) -> None:
    rng = random.Random(seed * 1000 + client)
    for seq in range(n_ops):
        key = rng.choice(keys)
        action = rng.choices([Kind.CAS, Kind.CREATE, Kind.DELETE], weights=[7, 2, 1])[0]
        if action is Kind.CAS:
            await cas_increment(store, client, seq, key, history)
        elif action is Kind.CREATE:
            await create(store, client, seq, key, history)
        else:
            await delete(store, client, key, history)


async def cas_increment(store: Store, client: int, seq: int, key: bytes, history: History) -> None:
    call = time.monotonic_ns()
    try:
        kv = await store.get(key)
    except StoreError:
        return  # a failed read has no effect to check
    await history.record(Operation(key, Kind.READ, call, time.monotonic_ns(), Outcome.OK, observed=register_of(kv)))
    if kv is None:
        return
    counter = int(kv.value.split(b":")[0]) + 1
    value = b"%d:%d:%d" % (counter, client, seq)
    call = time.monotonic_ns()
    common = {"expected_mod_revision": kv.mod_revision, "value": value, "client": client}
    try:
        revision = await store.update(key, value, kv.mod_revision)
    except Conflict as lost:
        assert isinstance(lost.current, KeyValue)
        op = Operation(
            key, Kind.CAS, call, time.monotonic_ns(), Outcome.CONFLICT, observed=register_of(lost.current), **common
        )  # type: ignore[arg-type]
    except KeyNotFound:
        op = Operation(key, Kind.CAS, call, time.monotonic_ns(), Outcome.NOT_FOUND, **common)  # type: ignore[arg-type]
    except StoreError:
        op = Operation(key, Kind.CAS, call, None, Outcome.UNKNOWN, **common)  # type: ignore[arg-type]
    else:
        op = Operation(key, Kind.CAS, call, time.monotonic_ns(), Outcome.OK, revision=revision, **common)  # type: ignore[arg-type]
    await history.record(op)


async def create(store: Store, client: int, seq: int, key: bytes, history: History) -> None:
    value = b"0:%d:%d" % (client, seq)
    call = time.monotonic_ns()
    try:
        revision = await store.create(key, value)
    except KeyExists:
        op = Operation(key, Kind.CREATE, call, time.monotonic_ns(), Outcome.EXISTS, value=value, client=client)
    except StoreError:
        op = Operation(key, Kind.CREATE, call, None, Outcome.UNKNOWN, value=value, client=client)
    else:
        op = Operation(key, Kind.CREATE, call, time.monotonic_ns(), Outcome.OK, value=value, revision=revision)
    await history.record(op)


async def delete(store: Store, client: int, key: bytes, history: History) -> None:
    """An unconditional delete, as a txn so the deleting revision is known (``Store.delete`` returns the kv)."""
    call = time.monotonic_ns()
    try:
        result = await store.txn([], [DeleteRange(key, prev_kv=True)])
    except StoreError:
        op = Operation(key, Kind.DELETE, call, None, Outcome.UNKNOWN, client=client)
    else:
        (deleted,) = result.responses
        assert isinstance(deleted, DeleteResult)
        if deleted.prev_kvs:
            observed = register_of(deleted.prev_kvs[0])
            op = Operation(
                key, Kind.DELETE, call, time.monotonic_ns(), Outcome.OK, observed=observed, revision=result.revision
            )
        else:
            op = Operation(key, Kind.DELETE, call, time.monotonic_ns(), Outcome.NOT_FOUND, client=client)
    await history.record(op)


async def run_clients(store: Store, keys: list[bytes], n_clients: int, n_ops: int, seed: int, history: History) -> None:
    async with asyncio.TaskGroup() as group:
        for client in range(n_clients):
            group.create_task(run_client(store, client, keys, n_ops, seed, history))


def committed_events(history: History) -> list[Event]:
    """The event sequence the acknowledged writes imply, in revision order, with full kv metadata."""
    writes: list[tuple[int, bytes, bytes | None]] = []
    for op in history.operations:
        if op.outcome is not Outcome.OK or op.kind is Kind.READ:
            continue
        writes.append((op.revision, op.key, None if op.kind is Kind.DELETE else op.value))
    writes.sort()
    events: list[Event] = []
    live: dict[bytes, KeyValue] = {}
    for revision, key, value in writes:
        if value is None:
            del live[key]
            events.append(Event(EventType.DELETE, KeyValue(key, mod_revision=revision)))
            continue
        before = live.get(key)
        created = before.create_revision if before else revision
        kv = KeyValue(key, value, created, revision, (before.version if before else 0) + 1)
        live[key] = kv
        events.append(Event(EventType.PUT, kv))
    return events


def state_at(events: list[Event], revision: int) -> tuple[KeyValue, ...]:
    """The live kvs, sorted by key, after every event up to ``revision``."""
    live: dict[bytes, KeyValue] = {}
    for event in events:
        if event.kv.mod_revision > revision:
            break
        if event.type is EventType.PUT:
            live[event.kv.key] = event.kv
        else:
            live.pop(event.kv.key, None)
    return tuple(live[key] for key in sorted(live))
