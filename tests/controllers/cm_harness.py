"""A controller manager in the test's own event loop, against a real ``skiff apiserver`` process.

``running_manager(kubeconfig, names)`` builds only the named controllers
(discovered exactly as ``skiff controller-manager`` does), runs them
as their ServiceAccounts (``--use-service-account-credentials``, as ``skiff
up`` does: a controller doing what its RBAC role does not allow fails here),
without leader election by default (on ``clock`` when given, e.g. a
FakeClock), waits for the informers to sync and yields an ``ApiClient``
plus the manager; on exit the manager is stopped and
the client closed.  ``eventually`` polls an async predicate to a deadline
(a generous bound for a condition, never a timing assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from skiff.client import ApiClient, ClientConfig
from skiff.client.clientbuilder import ServiceAccountClientBuilder
from skiff.client.clock import Clock
from skiff.client.resources import NAMESPACES, PODS
from skiff.client.timefmt import rfc3339
from skiff.controllers.manager import ControllerManager, discover_specs

T = TypeVar("T")
DEADLINE_S = 60.0


@contextlib.asynccontextmanager
async def running_manager(
    kubeconfig: Path,
    names: Sequence[str],
    *,
    leader_elect: bool = False,
    options: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[tuple[ApiClient, ControllerManager]]:
    specs = [s for s in discover_specs() if s.name in names]
    assert {s.name for s in specs} == set(names), f"unknown controllers among {names}"
    client = ApiClient(ClientConfig.from_kubeconfig(kubeconfig), user_agent="cm-test")
    accounts = ServiceAccountClientBuilder(client, user_agent="cm-test")
    manager = ControllerManager(client, specs, options=options, clock=clock, service_account_clients=accounts.client)
    task = asyncio.create_task(manager.run(leader_elect=leader_elect))
    try:
        await asyncio.wait_for(_synced_or_failed(manager, task), DEADLINE_S)
        yield client, manager
    finally:
        manager.stop()
        await asyncio.wait_for(task, 30)
        await accounts.close()
        await close_client(client)


async def close_client(client: ApiClient) -> None:
    """Close and let aborted TLS connections finish closing before the test's loop ends (aiohttp's advice)."""
    await client.close()
    await asyncio.sleep(0.25)


async def _synced_or_failed(manager: ControllerManager, task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(manager.synced.wait())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise AssertionError("controller manager stopped before syncing")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, deadline_s: float = DEADLINE_S) -> T:
    """The first truthy result of ``probe``, polled until the deadline."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def new_namespace(client: ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def pods_of(client: ApiClient, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
    """Pods not being deleted."""
    listed = await client.list(PODS, namespace, label_selector=selector)
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client: ApiClient, pod: dict[str, Any]) -> None:
    """What a kubelet would report for a running, ready pod (no kubelet in these tests)."""
    now = rfc3339()
    status = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ],
    }
    meta = pod["metadata"]
    await client.patch(PODS, meta["name"], {"status": status}, meta["namespace"], subresource="status")


async def mark_all_ready(client: ApiClient, namespace: str, selector: str | None = None) -> int:
    count = 0
    for pod in await pods_of(client, namespace, selector):
        conditions = (pod.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            await mark_ready(client, pod)
            count += 1
    return count


def container(name: str = "app", image: str = "python:3") -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["python3", "-c", "import time; time.sleep(3600)"]}


@contextlib.asynccontextmanager
async def auto_ready(client: ApiClient, namespace: str) -> AsyncIterator[None]:
    """A stand-in kubelet: keeps marking the namespace's pods Running and Ready."""

    async def loop() -> None:
        while True:
            await mark_all_ready(client, namespace)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_kubectl(kubectl: str, kubeconfig: Path, *args: str, deadline_s: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        kubectl,
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), deadline_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()
