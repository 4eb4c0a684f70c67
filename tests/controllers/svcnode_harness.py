"""Run chosen controllers in the test's event loop, with controller options, against a real API server.

The manager's ``ControllerManager`` builds its ``ControllerContext`` without
options; these tests need some (a 2 s node-monitor grace period, a small
pod CIDR range), so this builds the context itself, exactly as the manager
does otherwise: build every controller (they register informers), start
and sync the informers, run the workers; on exit shut everything down and
wait for the events still being written before closing the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from skiff.client import ApiClient, ClientConfig
from skiff.client.controller import Controller, ControllerContext
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory
from skiff.client.resources import NODES
from skiff.client.timefmt import rfc3339

Builder = Callable[[ControllerContext], Controller]


@contextlib.asynccontextmanager
async def running_controllers(
    kubeconfig: Path, builders: Sequence[Builder], options: dict[str, Any] | None = None
) -> AsyncIterator[ApiClient]:
    client = ApiClient(ClientConfig.from_kubeconfig(kubeconfig), user_agent="svcnode-test")
    informers = InformerFactory(client)
    recorders: list[EventRecorder] = []

    def recorder_for(component: str) -> EventRecorder:
        recorder = EventRecorder(client, component, clock=context.clock)
        recorders.append(recorder)
        return recorder

    context = ControllerContext(
        client=client, informers=informers, options=dict(options or {}), recorder_factory=recorder_for
    )
    controllers = [build(context) for build in builders]
    tasks: list[asyncio.Task[None]] = []
    try:
        await informers.start()
        await asyncio.wait_for(informers.wait_synced(), 60)
        tasks = [asyncio.create_task(ctrl.run(2)) for ctrl in controllers]
        yield client
    finally:
        for ctrl in controllers:
            ctrl.shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await informers.stop()
        # Events are written fire-and-forget: let them finish before the client's connections close.
        for recorder in recorders:
            await recorder.flush()
        await client.close()


def node_body(name: str, ready: str = "True") -> dict[str, Any]:
    now = rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": now, "lastTransitionTime": now},
            ],
        },
    }


async def create_node(client: ApiClient, name: str, ready: str = "True") -> dict[str, Any]:
    """A Node as a kubelet registers it: create, then its status (the create drops status)."""
    created = await client.create(NODES, node_body(name, ready))
    created["status"] = node_body(name, ready)["status"]
    return await client.update_status(NODES, created)
