"""Container processes: spawn as a new session (its own process group), wait, and kill the group.

Output goes straight to the log file (no pipe through the kubelet), so a
container outlives a kubelet restart and a new kubelet can adopt it by PID.
An adopted process is not our child: its exit is noticed by polling /proc and
its exit code is unknown (reported as upstream's ContainerStatusUnknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_S = 0.5
LAUNCH_DEADLINE_S = 10.0


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a re-used PID apart from the process we started."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class ContainerProcess:
    pid: int
    started_at: float
    start_ticks: int | None
    proc: asyncio.subprocess.Process | None = None

    async def wait(self) -> tuple[int | None, int | None]:
        """(exit code, signal) once the main process is gone; (None, None) for an adopted process."""
        if self.proc is not None:
            code = await self.proc.wait()
            kill_group(self.pid, signal.SIGKILL)  # leftovers of the container die with it, as with a cgroup kill
            if code < 0:
                return 128 - code, -code
            return code, None
        # Not our child: no exit notification exists, so poll /proc (cheap; one read per interval).
        while proc_start_ticks(self.pid) == self.start_ticks and self.start_ticks is not None:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        kill_group(self.pid, signal.SIGKILL)
        return None, None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.returncode is None
        return self.start_ticks is not None and proc_start_ticks(self.pid) == self.start_ticks

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM to the group, SIGKILL when it outlives the grace period; returns when the group is gone."""
        if self.alive():
            kill_group(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + max(grace_s, 0)
            while self.alive() and time.monotonic() < deadline:  # noqa: ASYNC110 - adopted processes have no event
                await asyncio.sleep(0.1)
        kill_group(self.pid, signal.SIGKILL)
        for _ in range(100):
            if not group_alive(self.pid) and not self.alive():
                break
            await asyncio.sleep(0.05)
        if self.proc is not None:
            await self.proc.wait()

    def to_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "startedAt": self.started_at, "startTicks": self.start_ticks}

    @classmethod
    def adopt(cls, state: dict[str, Any]) -> ContainerProcess | None:
        pid, ticks = int(state["pid"]), state.get("startTicks")
        if ticks is None or proc_start_ticks(pid) != ticks:
            return None
        return cls(pid, float(state["startedAt"]), ticks)


def _write_launch_spec(path: Path, spec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the env, secrets included
    with os.fdopen(fd, "w") as out:
        json.dump(spec, out)


async def spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    log_path: Path,
    launcher_spec: dict[str, Any] | None,
    spec_path: Path,
    stdin_fifo: Path | None = None,
) -> ContainerProcess:
    """Start one container run; with a launcher spec the command runs through ``skiff.kubelet.launcher``."""
    await asyncio.to_thread(log_path.parent.mkdir, parents=True, exist_ok=True)
    if launcher_spec is not None:
        await asyncio.to_thread(_write_launch_spec, spec_path, {**launcher_spec, "argv": argv, "env": env, "cwd": cwd})
        run_argv = [sys.executable, "-m", "skiff.kubelet.launcher", str(spec_path)]
        run_env = {"PATH": env.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
        run_cwd = "/"
    else:
        run_argv, run_env, run_cwd = argv, env, cwd
    log = await asyncio.to_thread(open, log_path, "ab")
    stdin: int = asyncio.subprocess.DEVNULL
    if stdin_fifo is not None:
        stdin = await asyncio.to_thread(_open_fifo, stdin_fifo)
    try:
        proc = await asyncio.create_subprocess_exec(
            *run_argv,
            stdin=stdin,
            stdout=log,
            stderr=log,
            env=run_env,
            cwd=run_cwd,
            start_new_session=True,
        )
    finally:
        log.close()
        if stdin_fifo is not None:
            os.close(stdin)
    if launcher_spec is not None:
        await _wait_for_exec(proc)
    return ContainerProcess(proc.pid, time.time(), proc_start_ticks(proc.pid), proc)


def _open_fifo(path: Path) -> int:
    """``spec.stdin``: a FIFO the attach endpoint writes to; read-write so the container never sees EOF."""
    if not path.exists():
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR)


def _still_launcher(pid: int) -> bool:
    try:
        return b"skiff.kubelet.launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def _wait_for_exec(proc: asyncio.subprocess.Process) -> None:
    """Until the launcher has exec'd the command its mounts are not in place; hooks and exec must wait."""
    deadline = time.monotonic() + LAUNCH_DEADLINE_S
    while proc.returncode is None and _still_launcher(proc.pid) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
