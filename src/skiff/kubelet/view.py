"""What the kubelet's HTTPS server needs from the pod runtime, and nothing more.

The server (logs, exec, attach, port-forward) and the pod workers are written
separately; this protocol is the seam between them, so the server never
reaches into supervisor internals and can be tested against a fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ContainerLogs:
    """Log files of one container: the current run and, when it restarted, the previous one."""

    current: Path
    previous: Path | None
    running: bool


@dataclass(frozen=True)
class ExecTarget:
    """How to start a process "inside" a running container.

    ``argv_prefix`` enters the container's namespaces (for example
    ``["nsenter", "--target", "1234", "--mount", "--"]``) and may be empty when
    the pod runs without isolation; ``env`` and ``cwd`` are the container's.
    """

    argv_prefix: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    pid: int
    attach_stdin: Path | None = None  # a FIFO that feeds the container's stdin when spec.stdin is true
    extra: dict[str, str] = field(default_factory=dict)


class PodRuntimeView(Protocol):
    def container_logs(self, namespace: str, pod: str, container: str) -> ContainerLogs | None:
        """None when the pod or container is unknown on this node."""

    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget | None:
        """None when the container is not running."""

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        """The pod's loopback address (port-forward connects there)."""
