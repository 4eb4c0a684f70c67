"""Discovery documents, built from the resource table.

* Legacy: ``/api`` (APIVersions), ``/apis`` (APIGroupList), ``/api/v1`` and
  ``/apis/{g}/{v}`` (APIResourceList, subresources as ``pods/status`` rows).
  kopf and the Python DynamicClient use only these.
* Aggregated (``apidiscovery.k8s.io`` v2 and v2beta1, same shape): one
  ``APIGroupDiscoveryList`` for ``/api`` (the core group, name "") and one for
  ``/apis``.  Every resource and subresource carries ``responseKind`` —
  client-go drops entries without it.  The first version of a group is its
  preferred version.

Pure functions of a sequence of ResourceInfo rows, in table order.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.registry.resource import ResourceInfo


@dataclass(frozen=True, slots=True)
class SubresourceKind:
    """How a subresource is described in discovery; empty group/version/kind = the parent's."""

    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""
    kind: str = ""


#: Upstream's discovery entries for the subresources Skiff knows (k8s.io/kubernetes pkg/registry).
SUBRESOURCES: dict[str, SubresourceKind] = {
    "status": SubresourceKind(("get", "patch", "update")),
    "scale": SubresourceKind(("get", "patch", "update"), "autoscaling", "v1", "Scale"),
    "binding": SubresourceKind(("create",), "", "v1", "Binding"),
    "eviction": SubresourceKind(("create",), "policy", "v1", "Eviction"),
    "log": SubresourceKind(("get",), "", "v1", "Pod"),
    "exec": SubresourceKind(("create", "get"), "", "v1", "PodExecOptions"),
    "attach": SubresourceKind(("create", "get"), "", "v1", "PodAttachOptions"),
    "portforward": SubresourceKind(("create", "get"), "", "v1", "PodPortForwardOptions"),
    "proxy": SubresourceKind(("create", "delete", "get", "patch", "update"), "", "v1", "PodProxyOptions"),
    "token": SubresourceKind(("create",), "authentication.k8s.io", "v1", "TokenRequest"),
    "finalize": SubresourceKind(("update",)),
    "ephemeralcontainers": SubresourceKind(("get", "patch", "update")),
    "resize": SubresourceKind(("get", "patch", "update")),
    "approval": SubresourceKind(("get", "patch", "update")),
}


def subresource_kind(info: ResourceInfo, sub: str) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with."""
    spec = SUBRESOURCES.get(sub, SubresourceKind(("get",)))
    if spec.kind:
        return spec.group, spec.version, spec.kind
    return info.group, info.version, info.kind


def subresource_verbs(sub: str) -> tuple[str, ...]:
    return SUBRESOURCES.get(sub, SubresourceKind(("get",))).verbs


def storage_version_hash(info: ResourceInfo) -> str:
    """Upstream's hash of the storage group/version/kind: base64 of sha256's first 8 bytes."""
    digest = hashlib.sha256(f"{info.group}/{info.version}/{info.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


# -- legacy ------------------------------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group_versions(infos: Iterable[ResourceInfo]) -> dict[str, list[str]]:
    """Named groups → their versions, in table order (first = preferred)."""
    out: dict[str, list[str]] = {}
    for info in infos:
        if not info.group:
            continue
        versions = out.setdefault(info.group, [])
        if info.version not in versions:
            versions.append(info.version)
    return out


def api_group_list(infos: Iterable[ResourceInfo]) -> dict[str, Any]:
    groups = []
    for group, versions in group_versions(infos).items():
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group_version: str, infos: Sequence[ResourceInfo]) -> dict[str, Any]:
    """The APIResourceList of one group/version (``infos`` already filtered to it)."""
    resources: list[dict[str, Any]] = []
    for info in infos:
        entry: dict[str, Any] = {
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": list(info.verbs),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        entry["storageVersionHash"] = storage_version_hash(info)
        resources.append(entry)
        for sub in info.subresources:
            group, version, kind = subresource_kind(info, sub)
            sub_entry: dict[str, Any] = {
                "name": f"{info.plural}/{sub}",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": kind,
                "verbs": list(subresource_verbs(sub)),
            }
            if (group, version) != (info.group, info.version):
                sub_entry["group"], sub_entry["version"] = group, version
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


# -- aggregated (apidiscovery.k8s.io) ----------------------------------------------------------


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if info.subresources:
        subs = []
        for sub in info.subresources:
            group, version, kind = subresource_kind(info, sub)
            subs.append(
                {
                    "subresource": sub,
                    "responseKind": {"group": group, "version": version, "kind": kind},
                    "verbs": list(subresource_verbs(sub)),
                }
            )
        entry["subresources"] = subs
    return entry


def aggregated_discovery(infos: Iterable[ResourceInfo], *, core: bool, version: str) -> dict[str, Any]:
    """The APIGroupDiscoveryList for ``/api`` (``core=True``) or ``/apis``, in ``version`` v2 or v2beta1."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for info in infos:
        if (info.group == "") != core:
            continue
        groups.setdefault(info.group, {}).setdefault(info.version, []).append(_aggregated_resource(info))
    items = []
    for group, versions in groups.items():
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if group:
            metadata = {"name": group, "creationTimestamp": None}
        items.append(
            {
                "metadata": metadata,
                "versions": [
                    {"version": v, "resources": resources, "freshness": "Current"} for v, resources in versions.items()
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
