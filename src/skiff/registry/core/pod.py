"""Pods (core/v1): defaults, create/update rules, the kubectl table, field selectors.

Follows k8s.io/kubernetes pkg/registry/core/pod/strategy.go:

* create: status becomes ``{phase: Pending, qosClass: ...}``;
* update: status carried over; the spec is immutable except container and
  init-container images, ``activeDeadlineSeconds`` (set, or lowered) and
  added tolerations (ValidatePodUpdate);
* status update: spec, deletionTimestamp and ownerReferences carried over
  (podStatusStrategy; labels and annotations may change);
* no generation in 1.32 (PodObservedGenerationTracking came later).

The table row is printPod's: READY counts ready containers, STATUS is the
phase refined by container waiting/terminated reasons (and "Terminating" once
deletionTimestamp is set), RESTARTS carries "(5m ago)" when a container last
terminated.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.pod_qos import qos_class
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import default_pod_spec, validate_pod_spec
from skiff.registry.deletion import pod_grace_period
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy, carry
from skiff.registry.table_format import dig, parse_time, since

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)
TERMINAL_PHASES = ("Succeeded", "Failed")


class PodStrategy(SpecStatusStrategy):
    tracks_generation = False
    columns = (
        NAME_COLUMN,
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            description="The number of times the containers in this pod have been restarted "
            "and when the last container in this pod has restarted.",
        ),
        AGE_COLUMN,
        Column("IP", priority=1, description="podIP address allocated to the pod."),
        Column("Node", priority=1, description="NodeName indicates in which node this pod is scheduled."),
        Column(
            "Nominated Node", priority=1, description="nominatedNodeName is set only when this pod preempts other pods."
        ),
        Column("Readiness Gates", priority=1, description="If specified, all readiness gates will be evaluated."),
    )
    field_selectors = (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    )

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)  # SetDefaults_Pod (pods only, not templates)
        # spec.priority and spec.preemptionPolicy are the Priority admission plugin's
        # (skiff.registry.admission.priority): it must see whether the client set them.

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_pod_spec_update(new.get("spec") or {}, old.get("spec") or {})

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "spec")
        new_meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata") or {}
        for key in ("deletionTimestamp", "ownerReferences"):
            if key in old_meta:
                new_meta[key] = copy.deepcopy(old_meta[key])
            else:
                new_meta.pop(key, None)

    def graceful_delete_period(self, obj: Obj, requested: int | None) -> int:
        """Bound, running pods wait for their kubelet; the rest go at once (CheckGracefulDelete)."""
        return pod_grace_period(obj, requested)

    def field_values(self, obj: Obj) -> dict[str, str]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return {
            "spec.nodeName": str(spec.get("nodeName") or ""),
            "spec.restartPolicy": str(spec.get("restartPolicy") or ""),
            "spec.schedulerName": str(spec.get("schedulerName") or ""),
            "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": str(status.get("phase") or ""),
            "status.podIP": pod_ip(status),
            "status.nominatedNodeName": str(status.get("nominatedNodeName") or ""),
        }

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return pod_row(obj, now)


def pod_ip(status: Obj) -> str:
    """The pod's primary IP: podIPs[0] (what PodToSelectableFields reads), else podIP."""
    ips = status.get("podIPs") or []
    if ips and isinstance(ips[0], dict) and ips[0].get("ip"):
        return str(ips[0]["ip"])
    return str(status.get("podIP") or "")


def validate_pod_spec_update(new: Obj, old: Obj) -> list[Cause]:
    """ValidatePodUpdate's spec rule: only images, activeDeadlineSeconds and added tolerations change."""
    causes: list[Cause] = []
    old_deadline, new_deadline = old.get("activeDeadlineSeconds"), new.get("activeDeadlineSeconds")
    if old_deadline is not None and (new_deadline is None or new_deadline > old_deadline):
        causes.append(
            fe.invalid("spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value")
        )
    old_tolerations = old.get("tolerations") or []
    new_tolerations = new.get("tolerations") or []
    if any(t not in new_tolerations for t in old_tolerations):
        causes.append(
            fe.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")
        )
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        old_list, new_list = old.get(key) or [], munged.get(key) or []
        if len(old_list) == len(new_list):
            for before, after in zip(old_list, new_list, strict=True):
                if isinstance(before, dict) and isinstance(after, dict) and "image" in before:
                    after["image"] = before["image"]
    for key in ("activeDeadlineSeconds", "tolerations"):
        if key in old:
            munged[key] = old[key]
        else:
            munged.pop(key, None)
    if munged != old:
        causes.append(fe.forbidden("spec", POD_UPDATE_FORBIDDEN))
    return causes


def pod_row(pod: Obj, now: datetime) -> list[Any]:
    """printPod's cells after Name: Ready, Status, Restarts, then (after Age) the wide columns."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    meta = pod.get("metadata") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or [] if isinstance(c, dict)}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if _restartable(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        finished = parse_time(dig(cs, "lastState", "terminated", "finishedAt"))
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = dig(cs, "state", "terminated")
        waiting = dig(cs, "state", "waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started") is True:
            ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, parse_time(dig(cs, "lastState", "terminated", "finishedAt")))
            waiting = dig(cs, "state", "waiting")
            terminated = dig(cs, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
            elif cs.get("ready") and dig(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in TERMINAL_PHASES:
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({since(last_restart.isoformat(), now)} ago)"

    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips and isinstance(pod_ips[0], dict) else "") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in reversed(status.get("conditions") or [])}
        true_count = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return [
        f"{ready}/{total}",
        reason,
        restarts_text,
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


def _restartable(container: Any) -> bool:
    """A sidecar: an init container with restartPolicy Always."""
    return isinstance(container, dict) and container.get("restartPolicy") == "Always"


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _condition_true(status: Obj, kind: str) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False
