"""The garbage collector's ownership graph: who owns whom, by uid (garbagecollector/graph.go).

A node per object the collector has seen: its identity (resource, namespace,
name, uid), its ownerReferences, whether it is being deleted and with which
GC finalizers.  ``dependents[uid]`` holds the uids of objects naming ``uid``
as an owner, whether or not that owner has been seen (an owner never seen is
"virtual" until a live GET settles whether it exists).

Pure bookkeeping; ``observe`` / ``forget`` return the uids whose handling
may have changed so the controller can enqueue them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.client import Resource

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


@dataclass
class Node:
    resource: Resource
    namespace: str
    name: str
    uid: str
    owners: list[dict[str, Any]] = field(default_factory=list)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN_FINALIZER in self.finalizers

    @property
    def deleting_dependents(self) -> bool:
        """Foreground deletion in progress: dependents go first (isDeletingDependents)."""
        return self.deleting and FOREGROUND_FINALIZER in self.finalizers


def node_of(resource: Resource, obj: Mapping[str, Any]) -> Node:
    meta = obj.get("metadata") or {}
    return Node(
        resource=resource,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        owners=[dict(r) for r in meta.get("ownerReferences") or []],
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(str(f) for f in meta.get("finalizers") or []),
    )


class Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}

    def observe(self, node: Node) -> set[str]:
        """Add or update a node; the uids to look at again (it, new/old owners, its dependents)."""
        old = self.nodes.get(node.uid)
        old_owner_uids = {str(r.get("uid")) for r in old.owners} if old else set()
        new_owner_uids = {str(r.get("uid")) for r in node.owners}
        for uid in old_owner_uids - new_owner_uids:
            deps = self.dependents.get(uid)
            if deps is not None:
                deps.discard(node.uid)
                if not deps:
                    del self.dependents[uid]
        for uid in new_owner_uids:
            self.dependents.setdefault(uid, set()).add(node.uid)
        self.nodes[node.uid] = node
        touched = set()
        if node.owners and (old is None or old.owners != node.owners or old.deleting != node.deleting):
            touched.add(node.uid)
        if node.deleting and (node.orphaning or node.deleting_dependents):
            touched.add(node.uid)
            if node.deleting_dependents:
                touched |= self.dependents.get(node.uid, set())
        # An owner in foreground deletion waits on this node: tell it when the node starts to go.
        if node.deleting or old_owner_uids != new_owner_uids:
            touched |= old_owner_uids | new_owner_uids
        return {uid for uid in touched if uid in self.nodes}

    def forget(self, uid: str) -> set[str]:
        """Drop a deleted node; its dependents (their owner may be gone) and owners (one waiter less)."""
        node = self.nodes.pop(uid, None)
        if node is None:
            return set()
        for ref in node.owners:
            deps = self.dependents.get(str(ref.get("uid")))
            if deps is not None:
                deps.discard(uid)
                if not deps:
                    del self.dependents[str(ref.get("uid"))]
        touched = set(self.dependents.get(uid, set()))
        touched |= {str(r.get("uid")) for r in node.owners}
        return {u for u in touched if u in self.nodes}

    def dependents_of(self, uid: str) -> list[Node]:
        return [self.nodes[d] for d in sorted(self.dependents.get(uid, ())) if d in self.nodes]

    def blocking_dependents(self, uid: str) -> list[Node]:
        """Dependents whose reference to ``uid`` has blockOwnerDeletion (blockingDependents)."""
        out = []
        for dep in self.dependents_of(uid):
            if any(str(r.get("uid")) == uid and r.get("blockOwnerDeletion") for r in dep.owners):
                out.append(dep)
        return out
