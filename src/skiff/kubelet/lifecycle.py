"""Restart policy for one container: run, wait, back off, run again (or finish).

``run_main`` supervises a regular container until the pod stops it or the
restart policy says it is done; ``run_init`` runs an init container until it
succeeds (True) or fails under ``restartPolicy: Never`` (False).  Image and
command failures back off like crashes (ImagePullBackOff, CrashLoopBackOff).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from skiff.kubelet.container import ContainerRunner

CONFIG_RETRY_S = 2.0


async def _attempt(runner: ContainerRunner) -> tuple[dict[str, Any] | None, float]:
    """Start once and wait: (terminated state or None when it never started, seconds it ran)."""
    started = time.monotonic()
    if not await runner.start():
        reason = runner.record.state.get("waiting", {}).get("reason")
        if reason == "RunContainerError":
            message = runner.record.state["waiting"].get("message", "")
            return {"exitCode": 127, "reason": "ContainerCannotRun", "message": message}, 0.0
        return None, 0.0
    term = await runner.wait_exit()
    return term, time.monotonic() - started


def _backoff_message(runner: ContainerRunner, delay: float) -> str:
    meta = runner.ctx.pod["metadata"]
    pod = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
    return f"back-off {delay:g}s restarting failed container={runner.name} pod={pod}"


async def _wait_before_retry(runner: ContainerRunner, term: dict[str, Any] | None, ran_s: float) -> None:
    """Move the last run to lastState and sleep the back-off (or the pull/config retry delay)."""
    if term is None:
        reason = runner.record.state.get("waiting", {}).get("reason")
        if reason == "ErrImagePull":
            delay = runner.pull_backoff.next_delay(0) or 1.0
            message = f'Back-off pulling image "{runner.spec.get("image", "")}"'
            await asyncio.sleep(0.5)
            runner.record.state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
            runner.ctx.event("Normal", "BackOff", message)
            runner.ctx.notify()
        else:
            delay = CONFIG_RETRY_S
        await asyncio.sleep(delay)
        return
    delay = runner.backoff.next_delay(ran_s)
    runner.record.last_state = {"terminated": term}
    if delay > 0:
        runner.record.state = {"waiting": {"reason": "CrashLoopBackOff", "message": _backoff_message(runner, delay)}}
        meta = runner.ctx.pod["metadata"]
        runner.ctx.event(
            "Warning", "BackOff", f"Back-off restarting failed container {runner.name} in pod {meta['name']}"
        )
        if term.get("reason") == "ContainerCannotRun" and runner.record.restart_count == 0:
            runner.record.state = {"waiting": {"reason": "RunContainerError", "message": term.get("message", "")}}
        runner.ctx.notify()
        await asyncio.sleep(delay)
    runner.record.restart_count += 1


def _final(runner: ContainerRunner, term: dict[str, Any]) -> None:
    if "terminated" not in runner.record.state:
        runner.record.state = {"terminated": term}
        runner.ctx.notify()


async def run_main(runner: ContainerRunner, restart_policy: str) -> None:
    while not runner.stopping:
        term, ran_s = await _attempt(runner)
        if runner.stopping:
            return
        if term is not None and (
            restart_policy == "Never" or (restart_policy == "OnFailure" and term["exitCode"] == 0)
        ):
            _final(runner, term)
            return
        await _wait_before_retry(runner, term, ran_s)


async def run_init(runner: ContainerRunner, restart_policy: str) -> bool:
    while not runner.stopping:
        term, ran_s = await _attempt(runner)
        if runner.stopping:
            return False
        if term is not None and term["exitCode"] == 0:
            return True
        if term is not None and restart_policy == "Never":
            _final(runner, term)
            return False
        await _wait_before_retry(runner, term, ran_s)
    return False
