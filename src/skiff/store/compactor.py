"""Automatic compaction: a retention window, like kube-apiserver's.

kube-apiserver (--etcd-compaction-interval, default 5 minutes) remembers the
store revision at each tick and, at the next tick, compacts at the revision it
remembered, so history is kept for at least one interval and at most two.  We
do the same over any Store.  Losing the race to another compactor (Compacted)
is fine: someone compacted at least as far.
"""

from __future__ import annotations

import asyncio
import logging

from skiff.store.errors import Compacted, StoreError
from skiff.store.protocol import Store

log = logging.getLogger(__name__)

#: kube-apiserver's default --etcd-compaction-interval.
DEFAULT_INTERVAL_S = 300.0


async def compact_periodically(store: Store, interval_s: float = DEFAULT_INTERVAL_S) -> None:
    """Run until cancelled; each tick compacts at the revision seen one tick earlier."""
    remembered = 0
    while True:
        await asyncio.sleep(interval_s)
        try:
            status = await store.status()
            if remembered > status.compact_revision:
                await store.compact(remembered)
                log.info("compacted at revision %d", remembered)
            remembered = status.revision
        except Compacted:
            remembered = 0
        except StoreError as err:  # keep compacting later; the store reports its own health
            log.warning("periodic compaction failed: %s", err)
