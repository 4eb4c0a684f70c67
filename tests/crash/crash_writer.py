"""Child process for the kill -9 test: writes to a SqliteStore under load until killed.

Usage: ``python crash_writer.py DB_PATH CYCLE SEED``.

Sixteen concurrent tasks write, each write acknowledged on stdout (one line,
flushed) only after the store returned it:

* ``put KEY REV VALUE`` — a put of a fresh key or of one of a few shared keys;
* ``txn KEY_A KEY_B REV VALUE`` — a txn writing both keys of a pair (the
  parent checks no pair is ever half written, acknowledged or not).

``ready`` is printed once the store is open.  Keys carry the cycle number so
every run writes keys of its own.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from skiff.store.sqlite import SqliteStore
from skiff.store.types import Put

WRITERS = 16
SHARED_KEYS = 4


def acknowledge(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def write_forever(store: SqliteStore, cycle: int, worker: int, rng: random.Random) -> None:
    seq = 0
    while True:
        seq += 1
        value = f"{cycle}.{worker}.{seq}"
        choice = rng.random()
        if choice < 0.4:
            key = f"/crash/fresh/{cycle}/{worker}/{seq}"
            revision = (await store.put(Put(key.encode(), value.encode()))).revision
            acknowledge(f"put {key} {revision} {value}")
        elif choice < 0.7:
            key = f"/crash/shared/{rng.randrange(SHARED_KEYS)}"
            revision = (await store.put(Put(key.encode(), value.encode()))).revision
            acknowledge(f"put {key} {revision} {value}")
        else:
            pair = f"/crash/pair/{cycle}/{worker}/{seq}"
            a, b = f"{pair}/a", f"{pair}/b"
            result = await store.txn([], [Put(a.encode(), value.encode()), Put(b.encode(), value.encode())])
            acknowledge(f"txn {a} {b} {result.revision} {value}")


async def main(path: Path, cycle: int, seed: int) -> None:
    store = await SqliteStore.open(path)
    acknowledge("ready")
    async with asyncio.TaskGroup() as group:
        for worker in range(WRITERS):
            group.create_task(write_forever(store, cycle, worker, random.Random(seed * 100_003 + worker)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
