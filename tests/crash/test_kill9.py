"""Crash safety of the SQLite backend: kill -9 at random moments loses no acknowledged write.

A child (``crash_writer.py``) writes under load and acknowledges each write on
stdout after the store returned it.  The parent kills it with SIGKILL (by PID)
after a seeded random number of acknowledgements — or, some cycles, while it
is still opening the store — then reopens the same file and checks:

* every write acknowledged in any cycle so far is there at its revision
  (a range at that revision returns it);
* revisions are contiguous: a watch from revision 1 replays every revision
  from 2 to the current one, strictly in order, nothing missing;
* no txn is torn: both keys of every pair exist at the same revision, whether
  or not its acknowledgement made it out before the kill.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from skiff.store.sqlite import SqliteStore
from skiff.store.types import Range, prefix_end

CYCLES = 8
SEED = 9_000_001
WRITER = Path(__file__).with_name("crash_writer.py")
#: A hang guard, not a timing threshold.
HANG_GUARD_S = 60.0


@dataclass(frozen=True)
class Ack:
    keys: tuple[bytes, ...]
    revision: int
    value: bytes


def parse_ack(line: str) -> Ack | None:
    parts = line.split()
    if parts and parts[0] == "put" and len(parts) == 4:
        return Ack((parts[1].encode(),), int(parts[2]), parts[3].encode())
    if parts and parts[0] == "txn" and len(parts) == 5:
        return Ack((parts[1].encode(), parts[2].encode()), int(parts[3]), parts[4].encode())
    return None


async def run_and_kill(db: Path, cycle: int, rng: random.Random, log: Path) -> list[Ack]:
    """One child run, killed by PID at a random moment; returns the writes it acknowledged."""
    with log.open("ab") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            str(db),
            str(cycle),
            str(SEED + cycle),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdout is not None
    acks: list[Ack] = []
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            if rng.random() < 0.25:
                await asyncio.sleep(rng.uniform(0.0, 0.4))  # maybe mid-open, maybe mid-recovery
            else:
                wanted = rng.randint(1, 600)
                while len(acks) < wanted:
                    line = await child.stdout.readline()
                    assert line, f"the writer exited early; see {log}"
                    if (ack := parse_ack(line.decode())) is not None:
                        acks.append(ack)
                await asyncio.sleep(rng.uniform(0.0, 0.02))
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
    # Acknowledgements already in the pipe were sent before the kill: they count.
    rest = await child.stdout.read()
    await child.wait()
    assert child.returncode == -signal.SIGKILL
    for line in rest.decode(errors="replace").splitlines(keepends=True):
        if line.endswith("\n") and (ack := parse_ack(line)) is not None:
            acks.append(ack)
    return acks


async def replayed_revisions(store: SqliteStore, current: int) -> list[int]:
    """The distinct revisions of a watch from revision 1, in delivery order, up to ``current``."""
    revisions: list[int] = []
    if current < 2:
        return revisions
    watcher = await store.watch(b"\0", b"\0", start_revision=1)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            async for response in watcher:
                for event in response.events:
                    if not revisions or revisions[-1] != event.kv.mod_revision:
                        revisions.append(event.kv.mod_revision)
                if revisions and revisions[-1] >= current:
                    break
    finally:
        await watcher.close()
    return revisions


async def verify(db: Path, acks: list[Ack]) -> int:
    store = await SqliteStore.open(db)
    try:
        current = (await store.range(Range(b"/probe"))).revision
        assert current >= max((a.revision for a in acks), default=1)

        for ack in acks:
            for key in ack.keys:
                at = await store.range(Range(key, revision=ack.revision))
                assert [(kv.value, kv.mod_revision) for kv in at.kvs] == [(ack.value, ack.revision)], (ack, at)

        assert await replayed_revisions(store, current) == list(range(2, current + 1))

        pairs = (await store.range(Range(b"/crash/pair/", prefix_end(b"/crash/pair/")))).kvs
        halves: dict[bytes, list[tuple[bytes, int]]] = {}
        for kv in pairs:
            pair, _, half = kv.key.rpartition(b"/")
            halves.setdefault(pair, []).append((half, kv.mod_revision))
        for pair, found in halves.items():
            assert [h for h, _ in found] == [b"a", b"b"], f"torn txn {pair!r}: {found}"
            assert found[0][1] == found[1][1], f"torn txn {pair!r}: {found}"
        return current
    finally:
        await store.close()


async def test_acknowledged_writes_survive_kill9(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "store.db"
    log = tmp_path / "writer.log"
    acknowledged: list[Ack] = []
    revisions = [1]
    for cycle in range(CYCLES):
        acknowledged += await run_and_kill(db, cycle, rng, log)
        revisions.append(await verify(db, acknowledged))
    assert revisions == sorted(revisions), "the store's revision went backwards across a restart"
    assert len(acknowledged) > 100, "the writer should have been killed under load"
