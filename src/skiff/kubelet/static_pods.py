"""Static pods from ``--pod-manifest-path``, run without the API server, mirrored into it.

Every few seconds (upstream's file source polls every 20 s) the directory's
``*.yaml``/``*.yml``/``*.json`` Pod manifests are read.  Each becomes a pod
named ``<name>-<node>`` whose UID is a hash of the manifest and the node, run
by the pod runtime directly — so static pods work before and without an
apiserver, which is what self-hosting needs.  A mirror pod (annotations
``kubernetes.io/config.mirror``/``config.hash``/``config.source: file``,
controller ownerReference to the Node) is created in the API; the runtime publishes the
static pod's status to it and never runs a mirror pod itself.  A changed
manifest restarts the pod under its new hash; a removed one stops it and
deletes its mirror.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from skiff.client import ApiClient, is_already_exists, is_not_found
from skiff.client.resources import PODS
from skiff.client.timefmt import rfc3339
from skiff.kubelet.context import log

if TYPE_CHECKING:
    from skiff.kubelet.runtime import PodRuntime

POLL_S = 5.0
MIRROR = "kubernetes.io/config.mirror"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SOURCE = "kubernetes.io/config.source"


def _read_manifests(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    found: list[tuple[Path, dict[str, Any]]] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            doc = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as err:
            log.warning("static pod manifest %s unreadable: %s", path, err)
            continue
        if isinstance(doc, dict) and doc.get("kind", "Pod") == "Pod" and (doc.get("metadata") or {}).get("name"):
            found.append((path, doc))
    return found


def static_pod(manifest: dict[str, Any], node_name: str, source: Path) -> dict[str, Any]:
    """The pod the kubelet runs for a manifest: upstream naming, a content-derived UID, bound to this node."""
    pod = copy.deepcopy(manifest)
    meta = pod.setdefault("metadata", {})
    meta["name"] = f"{meta['name']}-{node_name}"
    meta.setdefault("namespace", "default")
    digest = hashlib.md5(
        json.dumps([manifest, node_name, str(source)], sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()
    meta["uid"] = digest
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        CONFIG_HASH: digest,
        CONFIG_SOURCE: "file",
        "kubernetes.io/config.seen": rfc3339(),
    }
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node_name
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("status", {})
    return pod


def is_mirror(pod: dict[str, Any]) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


class StaticPods:
    def __init__(self, client: ApiClient, directory: Path, runtime: PodRuntime, node_name: str) -> None:
        self.client = client
        self.directory = directory
        self.runtime = runtime
        self.node_name = node_name
        self.node: dict[str, Any] = {}  # the registered Node, for the mirror pods' ownerReference
        self.running: dict[str, dict[str, Any]] = {}  # uid -> static pod

    async def scan(self) -> set[str]:
        """Start new or changed manifests, stop removed ones; returns the static pods' UIDs."""
        manifests = await asyncio.to_thread(_read_manifests, self.directory)
        wanted = {}
        for path, manifest in manifests:
            pod = static_pod(manifest, self.node_name, path)
            wanted[pod["metadata"]["uid"]] = pod
        for uid in [u for u in self.running if u not in wanted]:
            old = self.running.pop(uid)
            log.info("static pod %s removed or changed; stopping it", old["metadata"]["name"])
            await self.runtime.remove_static(uid)
            if old["metadata"]["name"] not in {p["metadata"]["name"] for p in wanted.values()}:
                await self._delete_mirror(old)
        for uid, pod in wanted.items():
            if uid not in self.running:
                self.running[uid] = pod
                self.runtime.add_static(pod)
        return set(wanted)

    async def sync_mirrors(self) -> None:
        for pod in list(self.running.values()):
            meta = pod["metadata"]
            try:
                existing = await self.client.get(PODS, meta["name"], meta["namespace"])
            except Exception as err:
                if not is_not_found(err):
                    raise
                await self._create_mirror(pod)
                continue
            annotations = existing["metadata"].get("annotations") or {}
            if annotations.get(MIRROR) != meta["uid"]:
                await self._delete_mirror(existing)

    async def _create_mirror(self, pod: dict[str, Any]) -> None:
        mirror = copy.deepcopy(pod)
        meta = mirror["metadata"]
        uid = meta.pop("uid")
        meta["annotations"][MIRROR] = uid
        node = self.node["metadata"]
        # A controller reference to this Node, as upstream's kubelet sets (NodeRestriction requires it).
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node["name"], "uid": node["uid"], "controller": True}
        ]
        mirror.pop("status", None)
        try:
            await self.client.create(PODS, mirror)
        except Exception as err:
            if not is_already_exists(err):
                raise

    async def _delete_mirror(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0)
        except Exception as err:
            if not is_not_found(err):
                raise

    async def run(self) -> None:
        while True:
            try:
                await self.scan()
                await self.sync_mirrors()
            except Exception as err:
                log.warning("static pods: %s", err)
            await asyncio.sleep(POLL_S)
