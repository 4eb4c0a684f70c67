"""Liveness, readiness and startup probes: exec, httpGet, tcpSocket, grpc.

A ``ProbeLoop`` runs one probe of one container with upstream's thresholds:
it waits ``initialDelaySeconds``, probes every ``periodSeconds`` with a
``timeoutSeconds`` limit, and flips its result after ``successThreshold``
consecutive successes or ``failureThreshold`` consecutive failures, calling
``on_change(bool)``.  httpGet succeeds on 200-399; a missing host means the
pod IP; named ports resolve through the container's ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecEnv:
    """Where exec probes and hooks run: the container's env, working dir and namespace-entering prefix."""

    env: dict[str, str]
    cwd: str
    prefix: tuple[str, ...] = ()


def resolve_port(port: int | str, container: dict[str, Any]) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not declared by container {container['name']}")


async def run_probe(probe: dict[str, Any], container: dict[str, Any], pod_ip: str, ex: ExecEnv) -> tuple[bool, str]:
    """One probe attempt: (success, message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        async with asyncio.timeout(timeout):
            return await _attempt(probe, container, pod_ip, ex)
    except TimeoutError:
        return False, f"probe timed out after {timeout:g}s"
    except asyncio.CancelledError:
        raise
    except Exception as err:  # any failure of the probed endpoint (gRPC errors included) is a failed probe
        return False, str(err) or type(err).__name__


async def _attempt(probe: dict[str, Any], container: dict[str, Any], pod_ip: str, ex: ExecEnv) -> tuple[bool, str]:
    if "exec" in probe:
        return await _exec_probe(probe["exec"].get("command") or [], ex)
    if "httpGet" in probe:
        get = probe["httpGet"]
        host = get.get("host") or pod_ip
        scheme = (get.get("scheme") or "HTTP").lower()
        url = f"{scheme}://{host}:{resolve_port(get['port'], container)}{get.get('path') or '/'}"
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers, ssl=False) as resp:
            return 200 <= resp.status < 400, f"HTTP probe failed with statuscode: {resp.status}"
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"]
        _, writer = await asyncio.open_connection(tcp.get("host") or pod_ip, resolve_port(tcp["port"], container))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, ""
    if "grpc" in probe:
        return await _grpc_probe(pod_ip, int(probe["grpc"]["port"]), probe["grpc"].get("service") or "")
    return False, "probe has no handler"


async def _exec_probe(command: list[str], ex: ExecEnv) -> tuple[bool, str]:
    """Runs in the container's mount namespace when it has one (``nsenter --wdns`` sets the directory there)."""
    argv = [*ex.prefix, *command] if ex.prefix else command
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=ex.env,
        cwd="/" if ex.prefix else ex.cwd,
        start_new_session=True,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode == 0, out.decode(errors="replace")[-1024:]


async def _grpc_probe(host: str, port: int, service: str) -> tuple[bool, str]:
    """grpc.health.v1.Health/Check without generated stubs: the request is field 1 (service) as bytes."""
    import grpc  # grpcio is a dependency; imported lazily to keep kubelet start-up light

    request = (b"\x0a" + bytes([len(service.encode())]) + service.encode()) if service else b""
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        response: bytes = await call(request)
    serving = response == b"\x08\x01"
    return serving, "" if serving else f"service unhealthy (responded with {response!r})"


class ProbeLoop:
    """Runs one probe forever; ``result`` is None until the first decision (readiness/startup start False)."""

    def __init__(
        self,
        kind: str,
        probe: dict[str, Any],
        container: dict[str, Any],
        pod_ip: str,
        ex: ExecEnv,
        on_change: Callable[[bool, str], None],
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self.ex = ex
        self.on_change = on_change
        self.result: bool | None = None

    async def run(self) -> None:
        await asyncio.sleep(float(self.probe.get("initialDelaySeconds") or 0))
        period = float(self.probe.get("periodSeconds") or 10)
        need_ok = int(self.probe.get("successThreshold") or 1)
        need_fail = int(self.probe.get("failureThreshold") or 3)
        oks = fails = 0
        while True:
            ok, message = await run_probe(self.probe, self.container, self.pod_ip, self.ex)
            oks, fails = (oks + 1, 0) if ok else (0, fails + 1)
            if ok and oks >= need_ok and self.result is not True:
                self.result = True
                self.on_change(True, "")
            elif not ok and fails >= need_fail and self.result is not False:
                self.result = False
                self.on_change(False, message)
                if self.kind == "liveness":
                    fails = 0
                    self.result = None
            await asyncio.sleep(period)
