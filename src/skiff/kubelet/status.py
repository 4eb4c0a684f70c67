"""Pod status from container records — pure functions, no I/O, no clock.

Phase and conditions follow upstream ``getPhase`` and ``generateAPIPodStatus``:
a waiting container that already terminated once (crash loop) counts as
stopped, not pending; Ready/ContainersReady list the unready containers;
Initialized lists the incomplete init containers; terminal pods are not Ready
(reason PodCompleted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


@dataclass
class ContainerRecord:
    """What the kubelet knows about one container; ``state`` is a v1.ContainerState dict."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False

    def running(self) -> bool:
        return "running" in self.state

    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")  # type: ignore[no-any-return]

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _succeeded(rec: ContainerRecord) -> bool:
    term = rec.terminated()
    return term is not None and term.get("exitCode") == 0


def _failed_once(rec: ContainerRecord) -> bool:
    term = rec.terminated() or rec.last_state.get("terminated")
    return term is not None and term.get("exitCode") != 0


def pod_phase(restart_policy: str, init: list[ContainerRecord], main: list[ContainerRecord]) -> str:
    for rec in init:
        if _succeeded(rec):
            continue
        if _failed_once(rec) and restart_policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for rec in main:
        if rec.running():
            running += 1
        elif rec.terminated() is not None:
            stopped += 1
            succeeded += int(_succeeded(rec))
        elif rec.last_state.get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


def _condition(
    kind: str, ok: bool, now: str, previous: dict[str, dict[str, Any]], reason: str = "", message: str = ""
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(kind)
    cond: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else now,
    }
    if not ok and reason:
        cond["reason"] = reason
        cond["message"] = message
    return cond


def pod_conditions(
    existing: list[dict[str, Any]],
    phase: str,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    sandbox_ready: bool,
    now: str,
    readiness_gates: Sequence[str] = (),
) -> list[dict[str, Any]]:
    previous = {c["type"]: c for c in existing}
    kept = [c for c in existing if c["type"] not in OWNED_CONDITIONS]
    incomplete = [r.name for r in init if not _succeeded(r)]
    unready = [r.name for r in main if not r.ready]
    terminal = phase in ("Succeeded", "Failed")
    ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    ready_msg = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
    initialized = not incomplete or (terminal and not init)
    owned = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal, now, previous),
        _condition(
            "Initialized",
            initialized,
            now,
            previous,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition("ContainersReady", not unready and not terminal, now, previous, ready_reason, ready_msg),
        _condition("Ready", not unready and not terminal, now, previous, ready_reason, ready_msg),
    ]
    gates_open = [g for g in readiness_gates if (previous.get(g) or {}).get("status") != "True"]
    if gates_open and not unready and not terminal:
        message = f"corresponding condition of pod readiness gate {', '.join(map(repr, gates_open))} does not exist."
        owned[3] = _condition("Ready", False, now, previous, "ReadinessGatesNotReady", message)
    if terminal and phase == "Succeeded" and init:
        owned[1] = _condition("Initialized", True, now, previous)
    return [*kept, *owned]
