"""postStart / preStop handlers: exec, httpGet, sleep (the same handlers probes use, longer timeout)."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.kubelet.probes import ExecEnv, run_probe

HOOK_TIMEOUT_S = 30


async def run_handler(handler: dict[str, Any], container: dict[str, Any], pod_ip: str, ex: ExecEnv) -> tuple[bool, str]:
    if "sleep" in handler:
        await asyncio.sleep(float(handler["sleep"].get("seconds", 0)))
        return True, ""
    return await run_probe({**handler, "timeoutSeconds": HOOK_TIMEOUT_S}, container, pod_ip, ex)
