"""Pod volumes materialised as directories under ``{root}/pods/{uid}/volumes/{name}``.

emptyDir (medium Memory → tmpfs when root), hostPath, configMap, secret,
downwardAPI, projected (configMap, secret, downwardAPI, serviceAccountToken)
and persistentVolumeClaim (a bound PV with ``hostPath`` or ``local``).
Content volumes are (re)written through the AtomicWriter on every sync, so
ConfigMap and Secret updates propagate.  ``VolumeError`` carries a message for
the pod's ``FailedMount``-style waiting state.

A projected ServiceAccount token is requested from the API server
(``TokenSource``, the runtime's ``sa_tokens.TokenManager``: bound to the pod,
refreshed after 80% of its lifetime, rewritten on the periodic resync).  A
failed request is a ``VolumeError`` (FailedMount, retried), except a server
that does not serve TokenRequest (501) or no token source at all: then the
file holds a placeholder and a warning is logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from skiff.api.status import ApiError
from skiff.kubelet.atomic_writer import write_atomically
from skiff.kubelet.env import EnvError, NodeResources, field_ref_value, resource_field_value

# (plural "configmaps" | "secrets" | "persistentvolumeclaims" | "persistentvolumes", namespace, name) -> object | None
ObjectFetch = Callable[[str, str | None, str], Awaitable[dict[str, Any] | None]]
Payload = dict[str, tuple[bytes, int]]
# (pod, audience ("" = the API server's), expirationSeconds) -> token
TokenSource = Callable[[dict[str, Any], str, int], Awaitable[str]]

log = logging.getLogger(__name__)
DEFAULT_TOKEN_EXPIRATION_S = 3600

CONTENT_KINDS = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume cannot be set up yet (missing ConfigMap/Secret/PVC, unbound claim)."""


def volume_dir(pod_dir: Path, name: str) -> Path:
    return pod_dir / "volumes" / name


async def setup_volumes(
    pod: dict[str, Any],
    pod_dir: Path,
    fetch: ObjectFetch,
    node: NodeResources,
    is_root: bool,
    tokens: TokenSource | None = None,
) -> dict[str, Path]:
    """Create or refresh every volume of the pod; returns {volume name: host path}."""
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        paths[volume["name"]] = await _setup_one(pod, pod_dir, volume, _Sources(fetch, tokens), node, is_root)
    return paths


class _Sources:
    """Where volume content comes from: API objects and ServiceAccount tokens."""

    def __init__(self, fetch: ObjectFetch, tokens: TokenSource | None) -> None:
        self.fetch = fetch
        self.tokens = tokens


async def _setup_one(
    pod: dict[str, Any], pod_dir: Path, volume: dict[str, Any], sources: _Sources, node: NodeResources, is_root: bool
) -> Path:
    fetch = sources.fetch
    target = volume_dir(pod_dir, volume["name"])
    namespace = pod["metadata"]["namespace"]
    if "hostPath" in volume:
        return await _host_path(volume["hostPath"])
    if "persistentVolumeClaim" in volume:
        return await _claim_path(namespace, volume["persistentVolumeClaim"]["claimName"], fetch)
    if "emptyDir" in volume:
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        if (volume["emptyDir"] or {}).get("medium") == "Memory" and is_root:
            await _mount_tmpfs(target)
        return target
    for kind in CONTENT_KINDS:
        if kind in volume:
            payload = await _payload(pod, kind, volume[kind] or {}, sources, node)
            await asyncio.to_thread(write_atomically, target, payload)
            return target
    raise VolumeError(f"volume {volume['name']!r} has an unsupported type on this node")


async def _host_path(spec: dict[str, Any]) -> Path:
    path = Path(spec["path"])
    kind = spec.get("type") or ""
    if kind == "DirectoryOrCreate":
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not await asyncio.to_thread(path.exists):
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.touch)
    elif kind in ("Directory", "File") and not await asyncio.to_thread(path.exists):
        raise VolumeError(f"hostPath type check failed: {path} does not exist")
    return path


async def _claim_path(namespace: str, claim: str, fetch: ObjectFetch) -> Path:
    pvc = await fetch("persistentvolumeclaims", namespace, claim)
    if pvc is None:
        raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
    volume_name = (pvc.get("spec") or {}).get("volumeName")
    if not volume_name:
        raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
    pv = await fetch("persistentvolumes", None, volume_name)
    if pv is None:
        raise VolumeError(f'persistentvolume "{volume_name}" not found')
    spec = pv.get("spec") or {}
    raw = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
    if not raw:
        raise VolumeError(f'persistentvolume "{volume_name}" is neither hostPath nor local')
    path = Path(raw)
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    return path


async def _mount_tmpfs(target: Path) -> None:
    if await asyncio.to_thread(os.path.ismount, target):
        return
    proc = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "tmpfs", str(target))
    await proc.wait()


async def _payload(
    pod: dict[str, Any], kind: str, spec: dict[str, Any], sources: _Sources, node: NodeResources
) -> Payload:
    mode = int(spec.get("defaultMode", 0o644))
    if kind == "projected":
        payload: Payload = {}
        for source in spec.get("sources") or []:
            for sub_kind in ("configMap", "secret", "downwardAPI", "serviceAccountToken"):
                if sub_kind in source:
                    sub_spec = source[sub_kind] or {}
                    payload.update(await _source_payload(pod, sub_kind, sub_spec, sources, node, mode))
        return payload
    return await _source_payload(pod, kind, spec, sources, node, mode)


async def _token_payload(pod: dict[str, Any], spec: dict[str, Any], tokens: TokenSource | None, mode: int) -> Payload:
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    placeholder = f"skiff-placeholder-token.{account}.{meta['namespace']}"
    if tokens is None:
        log.warning(
            "pod %s/%s: no token source, writing a placeholder ServiceAccount token", meta["namespace"], meta["name"]
        )
        token = placeholder
    else:
        try:
            token = await tokens(
                pod, str(spec.get("audience") or ""), int(spec.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION_S)
            )
        except ApiError as err:
            if err.code != 501:
                raise VolumeError(f"failed to fetch token: {err.message}") from err
            log.warning(
                "pod %s/%s: TokenRequest not served (%s); writing a placeholder ServiceAccount token",
                meta["namespace"],
                meta["name"],
                err.message,
            )
            token = placeholder
        except Exception as err:
            raise VolumeError(f"failed to fetch token: {err or type(err).__name__}") from err
    return {spec.get("path", "token"): (token.encode(), mode)}


async def _source_payload(
    pod: dict[str, Any], kind: str, spec: dict[str, Any], sources: _Sources, node: NodeResources, mode: int
) -> Payload:
    namespace = pod["metadata"]["namespace"]
    fetch = sources.fetch
    if kind == "serviceAccountToken":
        return await _token_payload(pod, spec, sources.tokens, mode)
    if kind == "downwardAPI":
        return _downward_payload(pod, spec, node, mode)  # the caller passes the pod with its addresses
    plural, name = (
        ("configmaps", spec.get("name", ""))
        if kind == "configMap"
        else ("secrets", spec.get("secretName") or spec.get("name", ""))
    )
    obj = await fetch(plural, namespace, name)
    if obj is None:
        if spec.get("optional"):
            return {}
        raise VolumeError(f'{plural[:-1]} "{name}" not found')
    data = _object_bytes(obj, kind)
    items = spec.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        if item["key"] not in data:
            if spec.get("optional"):
                continue
            raise VolumeError(f"configmap references non-existent config key: {item['key']}")
        payload[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return payload


def _object_bytes(obj: dict[str, Any], kind: str) -> dict[str, bytes]:
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _downward_payload(pod: dict[str, Any], spec: dict[str, Any], node: NodeResources, mode: int) -> Payload:
    payload: Payload = {}
    for item in spec.get("items") or []:
        try:
            if "fieldRef" in item:
                value = field_ref_value(pod, item["fieldRef"]["fieldPath"])
            else:
                ref = item["resourceFieldRef"]
                value = resource_field_value(pod, ref.get("containerName", ""), ref, node)
        except EnvError as err:
            raise VolumeError(str(err)) from err
        payload[item["path"]] = (value.encode(), int(item.get("mode", mode)))
    return payload
