"""Nodes (core/v1): the kubelet registers a node with its status; the table kubectl shows.

pkg/registry/core/node/strategy.go: unlike most kinds, create keeps the
status the kubelet sends; main-resource updates keep the stored status.
SetDefaults_NodeStatus: ``allocatable`` defaults to ``capacity``.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy

ROLE_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


class NodeStrategy(SpecStatusStrategy):
    tracks_generation = False
    columns = (
        NAME_COLUMN,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE_COLUMN,
        Column("Version", description="Kubelet Version reported by the node."),
        Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
        Column("External-IP", priority=1, description="List of addresses reachable to the node."),
        Column("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release."),
        Column("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
        Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the node."),
    )
    field_selectors = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        """Nodes keep the status they are registered with."""

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict) and status.get("capacity") and not status.get("allocatable"):
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"spec.unschedulable": "true" if (obj.get("spec") or {}).get("unschedulable") else "false"}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        status = obj.get("status") or {}
        states: list[str] = []
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready":
                states = ["Ready" if cond.get("status") == "True" else "NotReady"]
        if not states:
            states = ["Unknown"]
        if (obj.get("spec") or {}).get("unschedulable"):
            states.append("SchedulingDisabled")
        info = status.get("nodeInfo") or {}
        return [
            ",".join(states),
            ",".join(node_roles(obj)) or "<none>",
            info.get("kubeletVersion") or "",
            node_address(status, "InternalIP"),
            node_address(status, "ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]


def node_roles(node: Obj) -> list[str]:
    """findNodeRoles: node-role.kubernetes.io/<role> labels and the kubernetes.io/role value, sorted."""
    roles: set[str] = set()
    for key, value in ((node.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith(ROLE_PREFIX) and key[len(ROLE_PREFIX) :]:
            roles.add(key[len(ROLE_PREFIX) :])
        elif key == ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def node_address(status: Obj, kind: str) -> str:
    for address in status.get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address") or "")
    return "<none>"
