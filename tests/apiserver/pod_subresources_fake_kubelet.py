"""A fake pod runtime whose containers are real local processes, for KubeletServer tests.

``FakeRuntime`` implements skiff.kubelet.view.PodRuntimeView: ``run()`` starts
a process with stdout and stderr appended to
``root/{ns}_{pod}/{container}/{restart}.log`` (the layout the real kubelet
uses, one file per run) and, with ``stdin_fifo``, stdin read from a FIFO that
attach writes into.  ``stop()`` kills every process group it started.

Lives in tests/apiserver (on the pytest pythonpath) so the kubelet server
tests and the apiserver proxy tests share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from skiff.kubelet.view import ContainerLogs, ExecTarget


@dataclass
class FakeContainer:
    directory: Path
    restarts: int = 0
    proc: asyncio.subprocess.Process | None = None
    fifo: Path | None = None
    fifo_fd: int = -1

    @property
    def current(self) -> Path:
        return self.directory / f"{self.restarts}.log"

    @property
    def previous(self) -> Path | None:
        return self.directory / f"{self.restarts - 1}.log" if self.restarts else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


@dataclass
class FakeRuntime:
    root: Path
    ips: dict[tuple[str, str], str] = field(default_factory=dict)
    containers: dict[tuple[str, str, str], FakeContainer] = field(default_factory=dict)

    async def run(
        self, namespace: str, pod: str, container: str, argv: list[str], *, stdin_fifo: bool = False, ip: str = ""
    ) -> FakeContainer:
        """Start (or restart) a container: the previous run's log stays as ``previous``."""
        key = (namespace, pod, container)
        state = self.containers.get(key)
        if state is None:
            state = FakeContainer(self.root / f"{namespace}_{pod}" / container)
            state.directory.mkdir(parents=True, exist_ok=True)
            self.containers[key] = state
        else:
            if state.running:
                await self.kill(state)
            state.restarts += 1
        if ip:
            self.ips[(namespace, pod)] = ip
        stdin: int = asyncio.subprocess.DEVNULL
        if stdin_fifo:
            state.fifo = state.directory / "stdin"
            if not state.fifo.exists():
                os.mkfifo(state.fifo)
            # Read-write so the process never sees end-of-file between writers.
            state.fifo_fd = os.open(state.fifo, os.O_RDWR)
            stdin = state.fifo_fd
        with state.current.open("ab") as log:
            state.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=stdin, stdout=log, stderr=log, start_new_session=True, cwd=state.directory
            )
        return state

    async def kill(self, state: FakeContainer) -> None:
        if state.proc is not None and state.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.proc.pid, signal.SIGKILL)
            await state.proc.wait()
        if state.fifo_fd >= 0:
            os.close(state.fifo_fd)
            state.fifo_fd = -1

    async def stop(self) -> None:
        for state in self.containers.values():
            await self.kill(state)

    # -- PodRuntimeView ----------------------------------------------------------------------------
    def container_logs(self, namespace: str, pod: str, container: str) -> ContainerLogs | None:
        state = self.containers.get((namespace, pod, container))
        if state is None:
            return None
        return ContainerLogs(current=state.current, previous=state.previous, running=state.running)

    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget | None:
        state = self.containers.get((namespace, pod, container))
        if state is None or not state.running or state.proc is None:
            return None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POD_NAME": pod, "HOME": "/tmp"}
        return ExecTarget(
            argv_prefix=(), env=env, cwd=str(state.directory), pid=state.proc.pid, attach_stdin=state.fifo
        )

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        return self.ips.get((namespace, pod))
