"""Supervision of the component processes of a local cluster.

Each component runs as its own process in its own process group (so a stop
reaches everything it started), with stdout and stderr appended to
``LOG_DIR/<name>.log``.  A component that exits unexpectedly is restarted
with back-off (1 s doubling to 30 s, reset after a minute of running), like
kubelet restarts containers.  ``stop`` sends SIGTERM to each group, waits up
to the grace period, then SIGKILLs the group: nothing outlives ``skiff up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
BACKOFF_RESET_AFTER_S = 60.0


@dataclass
class Component:
    name: str
    argv: Sequence[str]
    grace_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self, log_dir: Path, on_event: Callable[[str], None] | None = None) -> None:
        self.log_dir = log_dir
        self.components: dict[str, Component] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._say = on_event or (lambda line: None)

    @staticmethod
    def skiff_argv(*args: str) -> list[str]:
        """The command line of a ``skiff`` subcommand with this very interpreter and package."""
        return [sys.executable, "-m", "skiff.cli.main", *args]

    async def start(self, component: Component) -> None:
        self.components[component.name] = component
        await self._spawn(component)
        self._tasks[component.name] = asyncio.create_task(self._watch(component), name=f"supervise-{component.name}")

    async def _spawn(self, component: Component) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{component.name}.log").open("ab")
        try:
            component.process = await asyncio.create_subprocess_exec(
                *component.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **component.env},
            )
        finally:
            log_file.close()

    async def _watch(self, component: Component) -> None:
        delay = BACKOFF_START_S
        loop = asyncio.get_running_loop()
        while True:
            assert component.process is not None
            started = loop.time()
            code = await component.process.wait()
            if self._stopping:
                return
            if loop.time() - started > BACKOFF_RESET_AFTER_S:
                delay = BACKOFF_START_S
            where = self.log_path(component.name)
            self._say(f"{component.name} exited with {code}; restarting in {delay:.0f}s (log: {where})")
            _kill_group(component.process.pid, signal.SIGKILL)  # leftovers of the dead component
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            if self._stopping:
                return
            component.restarts += 1
            await self._spawn(component)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def running(self, name: str) -> bool:
        proc = self.components[name].process
        return proc is not None and proc.returncode is None

    async def stop(self, order: Sequence[str] | None = None) -> None:
        """Stop components in ``order`` (default: reverse start order), each group SIGTERM then SIGKILL."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        for name in order or list(reversed(self.components)):
            await self._stop_one(self.components[name])

    async def _stop_one(self, component: Component) -> None:
        proc = component.process
        if proc is None:
            return
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), component.grace_s)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs; killing it", component.name, component.grace_s)
        _kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
