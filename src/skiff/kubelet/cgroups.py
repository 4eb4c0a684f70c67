"""Per-container cgroups for memory and CPU limits (v1 hierarchy, or v2 when unified).

Layout: ``/sys/fs/cgroup/<controller>/skiff/<pod-uid>/<container>`` (v1) or
``/sys/fs/cgroup/skiff/<pod-uid>/<container>`` (v2).  The launcher joins the
cgroup before it execs the container command, so no process escapes the limit.
OOM kills are read from ``memory.oom_control`` (v1 ``oom_kill``) or
``memory.events`` (v2) — the counter is fresh because each start recreates the
container's cgroup.  Without root or a writable hierarchy limits are not
enforced (logged once by the runtime).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CFS_PERIOD_US = 100_000


class Cgroups:
    def __init__(self, root: Path = Path("/sys/fs/cgroup"), parent: str = "skiff") -> None:
        self.root = root
        self.parent = parent
        self.v2 = (root / "cgroup.controllers").exists()
        self.enabled = os.geteuid() == 0 and os.access(root / ("" if self.v2 else "memory"), os.W_OK)

    def _dirs(self, pod_uid: str, container: str) -> dict[str, Path]:
        if self.v2:
            return {"unified": self.root / self.parent / pod_uid / container}
        return {
            c: self.root / c / self.parent / pod_uid / container
            for c in ("memory", "cpu", "pids")
            if (self.root / c).is_dir()
        }

    def create(self, pod_uid: str, container: str, memory_bytes: int | None, cpu_milli: int | None) -> list[Path]:
        """Fresh cgroups for one container run; returns the directories the launcher joins."""
        if not self.enabled:
            return []
        self.remove(pod_uid, container)
        dirs = self._dirs(pod_uid, container)
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        if self.v2:
            self._enable_v2_controllers(pod_uid)
            unified = dirs["unified"]
            if memory_bytes:
                _write(unified / "memory.max", str(memory_bytes))
                _write(unified / "memory.swap.max", "0")
            if cpu_milli:
                _write(unified / "cpu.max", f"{cpu_milli * CFS_PERIOD_US // 1000} {CFS_PERIOD_US}")
        else:
            if memory_bytes and "memory" in dirs:
                _write(dirs["memory"] / "memory.limit_in_bytes", str(memory_bytes))
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes))
            if cpu_milli and "cpu" in dirs:
                _write(dirs["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(dirs["cpu"] / "cpu.cfs_quota_us", str(cpu_milli * CFS_PERIOD_US // 1000))
        return list(dirs.values())

    def _enable_v2_controllers(self, pod_uid: str) -> None:
        for path in (self.root, self.root / self.parent, self.root / self.parent / pod_uid):
            _write(path / "cgroup.subtree_control", "+memory +cpu +pids")

    def oom_killed(self, pod_uid: str, container: str) -> bool:
        dirs = self._dirs(pod_uid, container)
        path = (
            dirs["unified"] / "memory.events"
            if self.v2
            else dirs.get("memory", Path("/nonexistent")) / "memory.oom_control"
        )
        try:
            text = path.read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() not in ("", "0"):
                return True
        return False

    def remove(self, pod_uid: str, container: str | None = None) -> None:
        """Remove a container's cgroups (or the whole pod's when ``container`` is None); busy ones stay."""
        if not self.enabled:
            return
        bases = (
            [self.root / self.parent / pod_uid]
            if self.v2
            else [self.root / c / self.parent / pod_uid for c in ("memory", "cpu", "pids")]
        )
        for base in bases:
            targets = [base / container] if container else [*sorted(base.glob("*/"), reverse=True), base]
            for target in targets:
                if target.is_dir():
                    with contextlib.suppress(OSError):
                        target.rmdir()


def _write(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(value)
