"""Waiting for a node to report Ready, through the REST API like any client.

With ``labels`` the wait also marks the node as kubeadm's mark-control-plane
phase does: once the kubelet has registered it, the labels it may not set
itself (NodeRestriction refuses a kubelet ``node-role.kubernetes.io/*``) are
added by this (admin) client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from skiff.client import ApiClient, ApiError, ClientConfig
from skiff.client.resources import NODES


def node_is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def wait_for_node_ready(
    kubeconfig: Path, node_name: str, timeout_s: float, *, labels: Mapping[str, str] | None = None
) -> bool:
    """True once the node is Ready (and has ``labels``); False at the deadline."""
    config = await asyncio.to_thread(ClientConfig.from_kubeconfig, kubeconfig)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with ApiClient(config, user_agent="skiff-up") as client:
        while loop.time() < deadline:
            try:
                node = await client.get(NODES, node_name)
                have = (node.get("metadata") or {}).get("labels") or {}
                if labels and any(have.get(key) != value for key, value in labels.items()):
                    node = await client.patch(NODES, node_name, {"metadata": {"labels": dict(labels)}})
                if node_is_ready(node):
                    return True
            except (ApiError, OSError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.5)
    return False
