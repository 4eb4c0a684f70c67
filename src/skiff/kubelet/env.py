"""A container's environment, computed the way the kubelet does.

Order and precedence follow upstream ``makeEnvironmentVariables``: ``envFrom``
sources first (later sources win, keys prefixed), then ``env`` entries in
order, each value ``$(VAR)``-expanded against what is defined so far plus the
service variables; finally the service variables fill any name not yet set.
A missing ConfigMap/Secret (or key) that is not ``optional`` raises
``EnvError``, which the pod worker shows as ``CreateContainerConfigError``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api.quantity import parse_quantity
from skiff.kubelet.expansion import expand

# (kind "configmap" | "secret", namespace, name) -> the object's data as str values, or None when absent.
SourceLookup = Callable[[str, str, str], Awaitable[dict[str, str] | None]]

_ANNOTATION_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """Configuration the container cannot start without is missing (CreateContainerConfigError)."""


@dataclass(frozen=True)
class NodeResources:
    """Allocatable values used when a resourceFieldRef names a limit the container does not set."""

    cpu_milli: int
    memory_bytes: int


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (data or {}).items()}


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables for every service with a cluster IP (upstream ``envvars.FromServices``)."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def field_ref_value(pod: dict[str, Any], path: str) -> str:
    """The downward API's fieldRef paths (metadata.*, spec.nodeName, status.podIP, ...)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    match = _ANNOTATION_RE.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(a["ip"] for a in status.get("hostIPs") or []),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or []),
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldRef fieldPath {path!r}")
    return str(simple[path] or "")


def resource_field_value(pod: dict[str, Any], container_name: str, ref: dict[str, Any], node: NodeResources) -> str:
    """requests/limits of cpu or memory divided by ``divisor`` and rounded up, as upstream does."""
    resource = ref["resource"]
    container = next(
        (c for c in pod["spec"]["containers"] if c["name"] == (ref.get("containerName") or container_name)), None
    )
    if container is None:
        raise EnvError(f"resourceFieldRef names unknown container {ref.get('containerName')!r}")
    section, _, name = resource.partition(".")
    raw = ((container.get("resources") or {}).get(section) or {}).get(name)
    if raw is None and section == "requests":
        raw = ((container.get("resources") or {}).get("limits") or {}).get(name)
    divisor = parse_quantity(ref.get("divisor") or "1").as_fraction()
    if raw is None:
        value = parse_quantity(f"{node.cpu_milli}m" if name == "cpu" else str(node.memory_bytes)).as_fraction()
    else:
        value = parse_quantity(raw).as_fraction()
    if divisor == 0:
        raise EnvError("resourceFieldRef divisor must not be zero")
    return str(max(math.ceil(value / divisor), 1 if name == "cpu" else 0))


async def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    services_env: Mapping[str, str],
    lookup: SourceLookup,
    node: NodeResources,
) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(await _env_from(namespace, source, lookup))
    for var in container.get("env") or []:
        if "value" in var or "valueFrom" not in var:
            combined = {**services_env, **env}
            env[var["name"]] = expand(var.get("value") or "", combined.get)
            continue
        value = await _value_from(pod, container["name"], var["valueFrom"], namespace, lookup, node)
        if value is not None:
            env[var["name"]] = value
    for key, value in services_env.items():
        env.setdefault(key, value)
    return env


async def _env_from(namespace: str, source: dict[str, Any], lookup: SourceLookup) -> dict[str, str]:
    kind = "configmap" if "configMapRef" in source else "secret"
    ref = source.get("configMapRef") or source.get("secretRef") or {}
    data = await lookup(kind, namespace, ref.get("name", ""))
    if data is None:
        if ref.get("optional"):
            return {}
        raise EnvError(f'{kind} "{ref.get("name")}" not found')
    prefix = source.get("prefix") or ""
    return {prefix + k: v for k, v in data.items()}


async def _value_from(
    pod: dict[str, Any],
    container_name: str,
    value_from: dict[str, Any],
    namespace: str,
    lookup: SourceLookup,
    node: NodeResources,
) -> str | None:
    if "fieldRef" in value_from:
        return field_ref_value(pod, value_from["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in value_from:
        return resource_field_value(pod, container_name, value_from["resourceFieldRef"], node)
    kind = "configmap" if "configMapKeyRef" in value_from else "secret"
    ref = value_from.get("configMapKeyRef") or value_from.get("secretKeyRef") or {}
    data = await lookup(kind, namespace, ref.get("name", ""))
    if data is None or ref.get("key") not in data:
        if ref.get("optional"):
            return None
        if data is None:
            raise EnvError(f'{kind} "{ref.get("name")}" not found')
        raise EnvError(f"couldn't find key {ref.get('key')} in {kind} {namespace}/{ref.get('name')}")
    return data[ref["key"]]
