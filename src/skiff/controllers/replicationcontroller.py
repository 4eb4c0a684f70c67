"""The ReplicationController controller: the ReplicaSet controller over core/v1 ReplicationControllers.

Upstream runs the ReplicaSet code through an adapter (pkg/controller/
replication); so do we.  The only difference the controller sees is the
selector: a plain label map (``spec.selector``), an empty or missing one
selecting everything (the API server defaults it to the template's labels).
"""

from __future__ import annotations

from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.client.controller import ControllerContext
from skiff.client.resources import REPLICATIONCONTROLLERS
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.replicaset import ReplicaKind, ReplicaSetController


def replicationcontroller_selector(rc: dict[str, Any]) -> LabelSelector:
    labels = (rc.get("spec") or {}).get("selector") or {}
    return label_selector_from_structured({"matchLabels": dict(labels)})


REPLICATIONCONTROLLER_KIND = ReplicaKind(
    REPLICATIONCONTROLLERS, "replicationcontroller", "replication-controller", replicationcontroller_selector
)


class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context, REPLICATIONCONTROLLER_KIND)


CONTROLLERS = [
    ControllerSpec("replicationcontroller", ReplicationManager, workers=5, service_account="replication-controller")
]
