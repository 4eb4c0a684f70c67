"""The shared base of every controller: a work queue drained by N workers calling ``sync(key)``.

A subclass wires informer handlers that only enqueue keys, and implements
``sync``: return to forget the key, raise to retry it with per-key
exponential back-off.  Errors are logged with the key, never swallowed
silently, and one failing key never stops the workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skiff.client.clock import Clock, RealClock
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory, meta_key
from skiff.client.rest import ApiClient
from skiff.client.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass
class ControllerContext:
    """What a controller is built from: shared by all controllers of one process."""

    client: ApiClient
    informers: InformerFactory
    clock: Clock = field(default_factory=RealClock)
    options: dict[str, Any] = field(default_factory=dict)
    recorder_factory: Callable[[str], EventRecorder] | None = None

    def recorder_for(self, component: str) -> EventRecorder:
        if self.recorder_factory is not None:
            return self.recorder_factory(component)
        return EventRecorder(self.client, component, clock=self.clock)


class Controller:
    name: str = "controller"

    def __init__(self, context: ControllerContext) -> None:
        self.context = context
        self.client = context.client
        self.informers = context.informers
        self.clock = context.clock
        self.queue = WorkQueue(context.clock)

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_obj(self, obj: dict[str, Any]) -> None:
        self.queue.add(meta_key(obj))

    async def run(self, workers: int = 2) -> None:
        """Drain the queue until ``shutdown()``; informers must be started (and synced) by the caller."""
        await asyncio.gather(*(self._worker() for _ in range(workers)))

    def shutdown(self) -> None:
        self.queue.shutdown()

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                await self.sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("%s: sync %s failed (retry %d): %s", self.name, key, self.queue.num_requeues(key), err)
                log.debug("%s: sync %s failure detail", self.name, key, exc_info=True)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)
