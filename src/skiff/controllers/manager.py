"""The controller manager: discover controllers, pick the enabled ones, run them while leading.

Discovery: every module of ``skiff.controllers`` may expose a module-level
``CONTROLLERS: list[ControllerSpec]``; ``discover_specs`` imports them all
with pkgutil (a module that fails to import is an error, not a silent skip).

Selection follows kube-controller-manager's ``--controllers`` flag: a list
of names, ``*`` for every controller enabled by default, ``-name`` to turn
one off; ``name`` turns on a controller that is off by default
(IsControllerEnabled: an explicit entry wins over ``*``).

Running: one InformerFactory (on the manager's own client) and one clock are
shared by all controllers.  Each controller gets the manager's client, or,
given ``service_account_clients`` (``--use-service-account-credentials``),
a client acting as its ServiceAccount ``kube-system/<spec.service_account>``,
the account upstream's controller uses, so its writes and events are
authorised by that account's ``system:controller:*`` role (as
kube-controller-manager's ClientBuilder vs. its root client for the shared
informers).  Controllers are built first (their
constructors register informers and handlers), then informers start and
sync, then every controller's workers run.  With leader election the whole
set runs only while this process holds the Lease
``kube-system/kube-controller-manager`` (LeaderElector, client-go
semantics) and is torn down when leadership is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import pkgutil
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from skiff.client import ApiClient
from skiff.client.clock import Clock, RealClock
from skiff.client.controller import Controller, ControllerContext
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory
from skiff.client.leader import LeaderElector

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-controller-manager"
PACKAGE = "skiff.controllers"


@dataclass(frozen=True)
class ControllerSpec:
    """One controller a module contributes: its flag name, how to build it, how many workers.

    ``service_account``: the kube-system ServiceAccount it acts as with
    ``--use-service-account-credentials`` (the name upstream's controller asks
    its ClientBuilder for; its role is ``system:controller:<that name>``); None
    runs it with the manager's own client.
    """

    name: str
    build: Callable[[ControllerContext], Controller]
    workers: int = 2
    enabled_by_default: bool = True
    service_account: str | None = None


def discover_specs(package: str = PACKAGE) -> list[ControllerSpec]:
    """Every ``CONTROLLERS`` entry of the package's modules, sorted by name; duplicate names are an error."""
    pkg = importlib.import_module(package)
    specs: dict[str, ControllerSpec] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        for spec in getattr(module, "CONTROLLERS", None) or []:
            if not isinstance(spec, ControllerSpec):
                raise TypeError(f"{module.__name__}.CONTROLLERS holds {spec!r}, not a ControllerSpec")
            if spec.name in specs:
                raise ValueError(f"controller {spec.name!r} is defined twice (again in {module.__name__})")
            specs[spec.name] = spec
    return [specs[name] for name in sorted(specs)]


def parse_controllers_flag(text: str) -> list[str]:
    """``"*,-foo,bar"`` → ``["*", "-foo", "bar"]`` (blank entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def is_enabled(name: str, flags: Sequence[str], enabled_by_default: bool = True) -> bool:
    """kube-controller-manager's IsControllerEnabled: explicit ``name``/``-name`` first, then ``*``."""
    star = False
    for entry in flags:
        if entry == name:
            return True
        if entry == f"-{name}":
            return False
        if entry == "*":
            star = True
    return star and enabled_by_default


def unknown_names(flags: Sequence[str], specs: Iterable[ControllerSpec]) -> list[str]:
    """Entries of ``--controllers`` that name no known controller (kube-controller-manager refuses them)."""
    known = {spec.name for spec in specs}
    return [entry for entry in flags if entry != "*" and entry.removeprefix("-") not in known]


def select_specs(specs: Sequence[ControllerSpec], flags: Sequence[str]) -> list[ControllerSpec]:
    return [spec for spec in specs if is_enabled(spec.name, flags, spec.enabled_by_default)]


def default_identity() -> str:
    """Hostname plus a random suffix, as kube-controller-manager's lock identity."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class ControllerManager:
    """Runs a set of controllers over one client; ``stop()`` ends ``run()``."""

    def __init__(
        self,
        client: ApiClient,
        specs: Sequence[ControllerSpec],
        *,
        clock: Clock | None = None,
        identity: str | None = None,
        lease_name: str = LEASE_NAME,
        lease_namespace: str = LEASE_NAMESPACE,
        lease_timings: tuple[float, float, float] = (15.0, 10.0, 2.0),
        options: dict[str, Any] | None = None,
        service_account_clients: Callable[[str], Awaitable[ApiClient]] | None = None,
    ) -> None:
        self.client = client
        self.service_account_clients = service_account_clients
        self.specs = list(specs)
        self.clock = clock or RealClock()
        self.identity = identity or default_identity()
        self.lease_name = lease_name
        self.lease_namespace = lease_namespace
        self.lease_timings = lease_timings  # (lease duration, renew deadline, retry period) in seconds
        self.options = dict(options or {})  # ControllerContext.options: per-controller tunables
        self.controllers: dict[str, Controller] = {}
        self.leading = False
        self.synced = asyncio.Event()
        self._stopping = asyncio.Event()
        self._elector: LeaderElector | None = None

    async def run(self, *, leader_elect: bool = True) -> None:
        """Run the controllers (while leading, with ``leader_elect``) until ``stop()``."""
        if not leader_elect:
            await self._until_stopped(self.run_controllers())
            return
        self._elector = LeaderElector(
            self.client,
            name=self.lease_name,
            namespace=self.lease_namespace,
            identity=self.identity,
            lease_duration_s=self.lease_timings[0],
            renew_deadline_s=self.lease_timings[1],
            retry_period_s=self.lease_timings[2],
            clock=self.clock,
        )
        await self._until_stopped(self._elector.run(self.run_controllers))

    def stop(self) -> None:
        self._stopping.set()
        if self._elector is not None:
            self._elector.stop()

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if self._elector is not None and not task.done():
                # Let the elector cancel its lead() and release the Lease.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=10)
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_controllers(self) -> None:
        """Build every controller, start and sync informers, run all workers; cancellation tears down."""
        informers = InformerFactory(self.client)
        recorders: list[EventRecorder] = []

        def context_for(client: ApiClient) -> ControllerContext:
            def recorder_for(component: str) -> EventRecorder:
                recorder = EventRecorder(client, component, clock=self.clock)
                recorders.append(recorder)
                return recorder

            return ControllerContext(
                client=client,
                informers=informers,
                clock=self.clock,
                options=self.options,
                recorder_factory=recorder_for,
            )

        self.controllers = {spec.name: spec.build(context_for(await self.client_for(spec))) for spec in self.specs}
        self.leading = True
        try:
            await informers.start()
            await informers.wait_synced()
            log.info("controller-manager: caches synced; running %s", ", ".join(self.controllers) or "nothing")
            self.synced.set()
            runs = [
                asyncio.create_task(self.controllers[spec.name].run(spec.workers), name=f"controller-{spec.name}")
                for spec in self.specs
            ]
            try:
                await asyncio.gather(*runs)
            finally:
                for ctrl in self.controllers.values():
                    ctrl.shutdown()
                for run in runs:
                    run.cancel()
                await asyncio.gather(*runs, return_exceptions=True)
        finally:
            self.leading = False
            self.synced.clear()
            await informers.stop()
            # Events still being written must finish before the client closes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(r.flush() for r in recorders)), timeout=5)

    async def client_for(self, spec: ControllerSpec) -> ApiClient:
        """The client ``spec``'s controller writes with: its ServiceAccount's, or the manager's own."""
        if self.service_account_clients is None or spec.service_account is None:
            return self.client
        return await self.service_account_clients(spec.service_account)

    def queue_depths(self) -> dict[str, int]:
        return {name: len(ctrl.queue) for name, ctrl in self.controllers.items()}


def health_app(manager: ControllerManager) -> web.Application:
    """``/healthz`` and ``/readyz`` (ok once running; readyz also while standing by) and Prometheus ``/metrics``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        lines = [
            "# HELP skiff_controller_manager_leader Whether this process holds the leader lease.",
            "# TYPE skiff_controller_manager_leader gauge",
            f"skiff_controller_manager_leader {int(manager.leading)}",
            "# HELP workqueue_depth Current depth of a controller's work queue.",
            "# TYPE workqueue_depth gauge",
        ]
        lines += [f'workqueue_depth{{name="{name}"}} {depth}' for name, depth in manager.queue_depths().items()]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
