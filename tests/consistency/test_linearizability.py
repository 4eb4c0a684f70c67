"""Concurrent clients' histories are linearizable, and watchers see exactly the committed events.

The checker (``linearizability``) is proven first on hand-made histories,
including ones it must reject, and so is the watch-log verifier.  Then 32 clients run compare-and-swap
increments, creates and deletes on 3 shared keys of a fresh store, while
watchers follow the prefix: one plainly, one forcibly reconnected every few
events from last_seen+1, and — in the compaction run — one that disconnects,
waits for a compaction past its position, and must resume through Compacted.
Each watcher's log must be exactly the committed sequence (derived from the
acknowledged writes and, in the plain run, read back from the store's history
with a watch from the start).
"""

from __future__ import annotations

import asyncio

import pytest
from linearizability import Kind, Operation, Outcome, Register, linearizable, non_linearizable_keys
from watch_follower import FollowLog, Relisted, follow, verify_follow
from workload import History, committed_events, run_clients, state_at

from skiff.store.protocol import Store
from skiff.store.types import Event, EventType, KeyValue, Range, prefix_end

N_CLIENTS = 32
OPS_PER_CLIENT = 40
SEED = 20240601
CONSISTENCY_BACKENDS = ["sqlite", "etcd-3.5.1", "etcd-3.4.23", "facade"]

K = b"k"


def op(kind: Kind, call: int, ret: int | None, outcome: Outcome = Outcome.OK, **fields: object) -> Operation:
    return Operation(K, kind, call, ret, outcome, **fields)  # type: ignore[arg-type]


def v(value: bytes, revision: int | None) -> Register:
    return Register(value, revision)


LINEARIZABLE = [
    pytest.param([], id="empty"),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.READ, 2, 3, observed=v(b"a", 2)),
            op(Kind.CAS, 4, 5, expected_mod_revision=2, value=b"b", revision=3),
            op(Kind.DELETE, 6, 7, observed=v(b"b", 3), revision=4),
            op(Kind.READ, 8, 9, observed=None),
        ],
        id="sequential",
    ),
    pytest.param(
        [op(Kind.CREATE, 0, 10, value=b"a", revision=2), op(Kind.READ, 1, 2, observed=None)],
        id="read-before-overlapping-create",
    ),
    pytest.param(
        [op(Kind.CREATE, 0, 10, value=b"a", revision=2), op(Kind.READ, 1, 2, observed=v(b"a", 2))],
        id="read-after-overlapping-create",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, 10, expected_mod_revision=2, value=b"b", revision=3),
            op(Kind.CAS, 3, 9, Outcome.CONFLICT, expected_mod_revision=2, value=b"c", observed=v(b"b", 3)),
        ],
        id="cas-race-one-wins",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, None, Outcome.UNKNOWN, expected_mod_revision=2, value=b"b"),
            op(Kind.READ, 20, 21, observed=v(b"b", 7)),
        ],
        id="unknown-cas-took-effect",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, None, Outcome.UNKNOWN, expected_mod_revision=2, value=b"b"),
            op(Kind.READ, 20, 21, observed=v(b"a", 2)),
        ],
        id="unknown-cas-did-not",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 5, value=b"a", revision=2),
            op(Kind.CREATE, 1, 6, Outcome.EXISTS, value=b"b"),
            op(Kind.DELETE, 2, 7, observed=v(b"a", 2), revision=3),
            op(Kind.DELETE, 3, 8, Outcome.NOT_FOUND),
        ],
        id="concurrent-create-exists-delete-notfound",
    ),
]

NOT_LINEARIZABLE = [
    pytest.param(
        [op(Kind.CREATE, 0, 1, value=b"a", revision=2), op(Kind.READ, 2, 3, observed=None)],
        id="read-misses-completed-create",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, 3, expected_mod_revision=2, value=b"b", revision=3),
            op(Kind.READ, 4, 5, observed=v(b"a", 2)),
        ],
        id="stale-read",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, 10, expected_mod_revision=2, value=b"b", revision=3),
            op(Kind.CAS, 3, 9, expected_mod_revision=2, value=b"c", revision=4),
        ],
        id="lost-update-both-cas-succeed",
    ),
    pytest.param(
        [op(Kind.CREATE, 0, 10, value=b"a", revision=2), op(Kind.CREATE, 1, 9, value=b"b", revision=3)],
        id="two-creates-succeed",
    ),
    pytest.param([op(Kind.READ, 0, 1, observed=v(b"never-written", 5))], id="read-of-unwritten-value"),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=5),
            op(Kind.CAS, 2, 3, expected_mod_revision=5, value=b"b", revision=4),
        ],
        id="revision-goes-backwards",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.CAS, 2, 3, Outcome.CONFLICT, expected_mod_revision=2, value=b"b", observed=v(b"a", 2)),
        ],
        id="conflict-although-revision-matched",
    ),
    pytest.param(
        [
            op(Kind.CREATE, 0, 1, value=b"a", revision=2),
            op(Kind.READ, 2, 3, observed=v(b"b", 3)),
            op(Kind.READ, 4, 5, observed=v(b"a", 2)),
            op(Kind.CAS, 0, None, Outcome.UNKNOWN, expected_mod_revision=2, value=b"b"),
        ],
        id="unknown-write-seen-then-unseen",
    ),
]


@pytest.mark.parametrize("history", LINEARIZABLE)
def test_checker_accepts(history: list[Operation]) -> None:
    assert linearizable(history)


@pytest.mark.parametrize("history", NOT_LINEARIZABLE)
def test_checker_rejects(history: list[Operation]) -> None:
    assert not linearizable(history)


def test_checker_rejects_an_impossible_read_among_many_concurrent_ones() -> None:
    """40 concurrent reads would be 40! orders to a naive search; the reduction makes it one path."""
    history = [op(Kind.CREATE, 0, 1, value=b"a", revision=2)]
    history += [op(Kind.READ, 2 + i, 1000, observed=v(b"a", 2)) for i in range(40)]
    history.append(op(Kind.READ, 2, 1000, observed=None))
    assert not linearizable(history)
    assert non_linearizable_keys(history) == [K]
    assert non_linearizable_keys(history[:-1]) == []


def put_event(key: bytes, value: bytes, created: int, revision: int, version: int) -> Event:
    return Event(EventType.PUT, KeyValue(key, value, created, revision, version))


COMMITTED = [
    put_event(b"a", b"1", 2, 2, 1),
    put_event(b"b", b"1", 3, 3, 1),
    put_event(b"a", b"2", 2, 4, 2),
    Event(EventType.DELETE, KeyValue(b"b", mod_revision=5)),
    put_event(b"a", b"3", 2, 6, 3),
]
A3 = KeyValue(b"a", b"3", 2, 6, 3)
A2 = KeyValue(b"a", b"2", 2, 4, 2)

WATCH_LOGS_ACCEPTED = [
    pytest.param(list(COMMITTED), id="everything"),
    pytest.param([*COMMITTED[:2], Relisted(5, (A2,)), COMMITTED[4]], id="relisted-across-compaction"),
    pytest.param([COMMITTED[0], Relisted(6, (A3,))], id="relisted-at-the-end"),
]
WATCH_LOGS_REJECTED = [
    pytest.param(COMMITTED[:4], id="missing-last"),
    pytest.param([*COMMITTED[:2], *COMMITTED[3:]], id="skipped-event"),
    pytest.param([*COMMITTED[:3], COMMITTED[2], *COMMITTED[3:]], id="duplicated-event"),
    pytest.param([COMMITTED[1], COMMITTED[0], *COMMITTED[2:]], id="reordered"),
    pytest.param([*COMMITTED[:2], Relisted(5, (A3,)), COMMITTED[4]], id="relist-with-wrong-state"),
    pytest.param([*COMMITTED[:3], Relisted(3, ()), *COMMITTED[3:]], id="relist-below-what-was-needed"),
    pytest.param([*COMMITTED[:4], put_event(b"a", b"3", 2, 6, 4)], id="wrong-version"),
]


@pytest.mark.parametrize("items", WATCH_LOGS_ACCEPTED)
def test_watch_log_verifier_accepts(items: list[Event | Relisted]) -> None:
    verify_follow(FollowLog(items), COMMITTED, 2)


@pytest.mark.parametrize("items", WATCH_LOGS_REJECTED)
def test_watch_log_verifier_rejects(items: list[Event | Relisted]) -> None:
    with pytest.raises(AssertionError):
        verify_follow(FollowLog(items), COMMITTED, 2)


async def current_revision(store: Store) -> int:
    return (await store.range(Range(b"/probe"))).revision


async def run_and_follow(store: Store, *, compact_mid_run: bool) -> tuple[History, dict[str, FollowLog], int]:
    """The workload with watchers (and a compactor); returns the history, each watcher's log, the start."""
    prefix = b"/consistency/"
    keys = [prefix + b"shared-%d" % i for i in range(3)]
    marker = prefix + b"~done"
    start = await current_revision(store) + 1
    history = History()
    laggard_paused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    compacted = asyncio.Event()

    async def pause_until_compacted(last_seen: int) -> None:
        laggard_paused.set_result(last_seen)
        await compacted.wait()

    async def compactor(workload: asyncio.Task[None]) -> None:
        last_seen = await laggard_paused
        # Two writes of its own, so the compaction point passes last_seen + 1.
        for i in range(2):
            revision = await store.create(prefix + b"compactor-%d" % i, b"x")
            await history.record(
                Operation(prefix + b"compactor-%d" % i, Kind.CREATE, 0, 0, Outcome.OK, value=b"x", revision=revision)
            )
        point = await current_revision(store)
        assert point > last_seen + 1
        await store.compact(point)
        compacted.set()
        # A second compaction later in the run, wherever the other watchers are.
        more = asyncio.ensure_future(history.wait_for_writes(history.writes_done + 30))
        await asyncio.wait([more, workload], return_when=asyncio.FIRST_COMPLETED)
        if more.done():
            await store.compact(await current_revision(store))
        else:
            more.cancel()

    async with asyncio.TaskGroup() as group:
        watchers = {
            "plain": group.create_task(follow(store, prefix, start, marker)),
            "reconnecting": group.create_task(follow(store, prefix, start, marker, reconnect_every=7)),
        }
        if compact_mid_run:
            watchers["laggard"] = group.create_task(
                follow(store, prefix, start, marker, reconnect_every=10, on_first_disconnect=pause_until_compacted)
            )
        workload = group.create_task(run_clients(store, keys, N_CLIENTS, OPS_PER_CLIENT, SEED, history))
        if compact_mid_run:
            group.create_task(compactor(workload))
        await workload
        done = await store.create(marker, b"done")
        await history.record(Operation(marker, Kind.CREATE, 0, 0, Outcome.OK, value=b"done", revision=done))
    return history, {name: task.result() for name, task in watchers.items()}, start


def check_history(history: History, start: int) -> list[Event]:
    unknown = [op for op in history.operations if op.outcome is Outcome.UNKNOWN]
    assert unknown == [], "a local store should answer every request"
    assert non_linearizable_keys(history.operations) == []
    committed = committed_events(history)
    revisions = [event.kv.mod_revision for event in committed]
    assert revisions == list(range(start, start + len(committed))), "acknowledged writes are not contiguous"
    return committed


@pytest.mark.parametrize("backend", CONSISTENCY_BACKENDS, indirect=True)
async def test_linearizable_with_watchers_reconnecting(fresh_store: Store) -> None:
    store = fresh_store
    history, logs, start = await run_and_follow(store, compact_mid_run=False)
    committed = check_history(history, start)
    writes = [op for op in history.operations if op.kind is not Kind.READ and op.outcome is Outcome.OK]
    assert len(writes) > 50, "the workload should contend on the keys"

    for name, log in logs.items():
        assert log.relists == [], f"{name}: nothing was compacted"
        verify_follow(log, committed, start)
    assert logs["reconnecting"].reconnects >= 3

    # The store's own history, read back with one watch from the start, is the same sequence.
    read_back = await follow(store, b"/consistency/", 1, b"/consistency/~done")
    verify_follow(read_back, committed, start)
    final = (await store.range(Range(b"/consistency/", prefix_end(b"/consistency/")))).kvs
    assert final == state_at(committed, committed[-1].kv.mod_revision)


@pytest.mark.parametrize("backend", CONSISTENCY_BACKENDS, indirect=True)
async def test_watchers_resume_across_compaction(fresh_store: Store) -> None:
    store = fresh_store
    history, logs, start = await run_and_follow(store, compact_mid_run=True)
    committed = check_history(history, start)

    for log in logs.values():
        verify_follow(log, committed, start)
    assert logs["laggard"].relists, "the laggard reopened below the compaction point: it must have seen Compacted"
    final = (await store.range(Range(b"/consistency/", prefix_end(b"/consistency/")))).kvs
    assert final == state_at(committed, committed[-1].kv.mod_revision)
