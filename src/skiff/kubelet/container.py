"""One container of a pod: resolve image, build env and argv, start, wait, restart with back-off, stop.

State changes land in ``record`` (a v1.ContainerStatus in the making) and
every change calls ``ctx.notify()`` so the pod worker publishes status.
Waiting reasons follow upstream: ContainerCreating, ErrImagePull then
ImagePullBackOff, CreateContainerConfigError, RunContainerError for a command
that cannot be executed (last state: terminated ContainerCannotRun, exit 127),
CrashLoopBackOff while a restart is backing off.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skiff.api.quantity import parse_quantity
from skiff.client.timefmt import rfc3339
from skiff.kubelet.backoff import CrashBackoff
from skiff.kubelet.context import PodContext, log
from skiff.kubelet.env import EnvError, container_env
from skiff.kubelet.expansion import expand_all
from skiff.kubelet.hooks import run_handler
from skiff.kubelet.images import ImageError, unrunnable_in_rootfs
from skiff.kubelet.probes import ExecEnv, ProbeLoop
from skiff.kubelet.process import ContainerProcess, spawn
from skiff.kubelet.status import ContainerRecord

MESSAGE_LIMIT = 4096


class StartError(Exception):
    """The container cannot start now; ``reason`` is the waiting reason to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _implicit_env(ctx: PodContext) -> dict[str, str]:
    """Skiff extension: every container knows its pod's address and names without a downward-API entry.

    Pods share the host network, so a server must bind its pod's own address; the issue's canonical example
    (``kubectl create deployment ... -- python3 -m http.server 8080 --bind '$(POD_IP)'``) has no env entries.
    Values the pod defines itself win.
    """
    meta = ctx.pod["metadata"]
    return {
        "POD_IP": ctx.pod_ip,
        "POD_NAME": meta["name"],
        "POD_NAMESPACE": meta["namespace"],
        "NODE_NAME": ctx.node.node_name,
        "HOST_IP": ctx.node.node_ip,
    }


def _unrunnable(argv: list[str], path: str, cwd: str, isolated: bool, requested: str) -> str | None:
    """Why the command cannot be executed (in the runtime's words, naming what the pod asked for), or None."""
    first = argv[0] if argv else ""
    if not first or not ((first.startswith("/") and Path(first).exists()) or shutil.which(first, path=path)):
        if requested.startswith("/"):
            return f'exec: "{requested}": stat {requested}: no such file or directory'
        return f'exec: "{requested}": executable file not found in $PATH'
    if not isolated and not Path(cwd).is_dir():
        return f"chdir to cwd ({cwd!r}) set in config.json failed: no such file or directory"
    return None


class ContainerRunner:
    def __init__(self, ctx: PodContext, spec: dict[str, Any]) -> None:
        self.ctx = ctx
        self.spec = spec
        self.name: str = spec["name"]
        self.record = ContainerRecord(self.name, spec.get("image", ""))
        self.process: ContainerProcess | None = None
        self.env: dict[str, str] = {}
        self.cwd = "/"
        self.rootfs: str | None = None  # an imported image's root filesystem, chrooted into by the launcher
        self.image_user: tuple[int, int | None] | None = None  # its config's User, unless securityContext says
        self.backoff = CrashBackoff()
        self.pull_backoff = CrashBackoff()
        self._probes: list[asyncio.Task[None]] = []
        self._kills: set[asyncio.Task[None]] = set()
        self._started_event = asyncio.Event()
        self.stopping = False

    # ---- starting -----------------------------------------------------------------------------------
    async def _prepare(self) -> list[str]:
        try:
            image = await self.ctx.node.images.resolve(self.spec.get("image", ""))
        except ImageError as err:
            self.ctx.event("Warning", "Failed", f'Failed to pull image "{self.record.image}": {err}')
            raise StartError("ErrImagePull", str(err)) from err
        self.record.image_id = image.image_id
        if image.rootfs is not None and not self.ctx.node.isolate:
            message = (
                f'image "{self.record.image}" is an imported image with its own root filesystem, which needs a '
                "mount namespace and chroot: the kubelet is not running as root"
            )
            self.ctx.event("Warning", "Failed", f"Error: {message}")
            raise StartError("CreateContainerError", message)
        if isinstance(image.user, str):
            self.ctx.event("Warning", "Failed", f"Error: {image.user}")
            raise StartError("CreateContainerError", image.user)
        self.rootfs = image.rootfs
        self.image_user = image.user
        self.ctx.event("Normal", "Pulled", f'Container image "{self.record.image}" already present on machine')
        try:
            env = await container_env(
                self.ctx.pod_with_addresses(),
                self.spec,
                self.ctx.node.services_env(self.ctx.pod),
                self.ctx.node.lookup,
                self.ctx.node.resources,
            )
        except EnvError as err:
            self.ctx.event("Warning", "Failed", f"Error: {err}")
            raise StartError("CreateContainerConfigError", str(err)) from err
        for key, value in image.env:  # the image config's Env first; the container's entries win
            env.setdefault(key, value)
        for key, value in _implicit_env(self.ctx).items():
            env.setdefault(key, value)
        env.setdefault("PATH", image.path())
        env.setdefault("HOSTNAME", self.ctx.pod["spec"].get("hostname") or self.ctx.pod["metadata"]["name"])
        env.setdefault("HOME", "/root")  # container runtimes set HOME for the (root) user when the image does not
        self.env = env
        self.cwd = self.spec.get("workingDir") or image.working_dir or "/"
        command = expand_all(self.spec.get("command") or [], env)
        argv = image.argv(command, expand_all(self.spec.get("args") or [], env))
        requested = command[0] if command else (argv[0] if argv else "")
        if image.rootfs is not None:
            problem = await asyncio.to_thread(unrunnable_in_rootfs, argv, env["PATH"], image.rootfs, requested)
        else:
            problem = await asyncio.to_thread(
                _unrunnable, argv, env["PATH"], self.cwd, self.ctx.node.isolate, requested
            )
        if problem:
            self.ctx.event("Warning", "Failed", f'Error: failed to start container "{self.name}": {problem}')
            raise StartError("RunContainerError", problem)
        return argv

    def _launcher_spec(self) -> dict[str, Any] | None:
        node = self.ctx.node
        limits = (self.spec.get("resources") or {}).get("limits") or {}
        memory = parse_quantity(limits["memory"]).value() if "memory" in limits else None
        cpu = parse_quantity(limits["cpu"]).milli_value() if "cpu" in limits else None
        cgroups = node.cgroups.create(self.ctx.uid, self.name, memory, cpu)
        if not node.isolate:
            return {"cgroups": [str(p) for p in cgroups], "mounts": []} if cgroups else None
        mounts = []
        for vm in self.spec.get("volumeMounts") or []:
            source = self.ctx.volume_paths.get(vm["name"])
            if source is None:
                continue
            if vm.get("subPath"):
                source = source / vm["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append({"source": str(source), "target": vm["mountPath"], "readOnly": bool(vm.get("readOnly"))})
        pod_dir = self.ctx.pod_dir
        mounts.append({"source": str(pod_dir / "etc" / "resolv.conf"), "target": "/etc/resolv.conf"})
        mounts.append({"source": str(pod_dir / "etc" / "hosts"), "target": "/etc/hosts"})
        term_path = self.spec.get("terminationMessagePath") or "/dev/termination-log"
        mounts.append({"source": str(self._termination_file()), "target": term_path})
        hostname = self.ctx.pod["spec"].get("hostname") or self.ctx.pod["metadata"]["name"]
        spec = {"cgroups": [str(p) for p in cgroups], "mounts": mounts, "hostname": hostname[:63], **self._identity()}
        if self.rootfs is None:
            return spec
        scratch = pod_dir / "containers" / self.name / "rootfs"
        shutil.rmtree(scratch, ignore_errors=True)  # every run starts from the image, as a new container would
        return {**spec, "rootfs": self.rootfs, "rootfsScratch": str(scratch)}

    def _identity(self) -> dict[str, Any]:
        """runAsUser/runAsGroup (container securityContext, the pod's, the image's User), supplementalGroups."""
        pod_ctx = self.ctx.pod["spec"].get("securityContext") or {}
        own = self.spec.get("securityContext") or {}
        identity: dict[str, Any] = {}
        for key in ("runAsUser", "runAsGroup"):
            value = own.get(key, pod_ctx.get(key))
            if value is not None:
                identity[key] = int(value)
        if self.image_user is not None and "runAsUser" not in identity:  # an imported image's config User
            identity["runAsUser"] = self.image_user[0]
            if self.image_user[1] is not None:
                identity.setdefault("runAsGroup", self.image_user[1])
        if pod_ctx.get("supplementalGroups"):
            identity["supplementalGroups"] = [int(g) for g in pod_ctx["supplementalGroups"]]
        return identity

    def _termination_file(self) -> Path:
        path = self.ctx.pod_dir / "containers" / self.name / "termination-log"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch()
        return path

    def _reset_termination_file(self) -> None:
        self._termination_file().write_bytes(b"")

    def stdin_fifo(self) -> Path:
        return self.ctx.pod_dir / "containers" / self.name / "stdin"

    def log_path(self, restart_count: int | None = None) -> Path:
        count = self.record.restart_count if restart_count is None else restart_count
        return self.ctx.pod_dir / "logs" / self.name / f"{count}.log"

    async def start(self) -> bool:
        """Try one start; False when it could not (the record says why)."""
        try:
            argv = await self._prepare()
            launcher = await asyncio.to_thread(self._launcher_spec)
            await asyncio.to_thread(self._reset_termination_file)
            spec_path = self.ctx.pod_dir / "containers" / self.name / "launch.json"
            fifo = self.stdin_fifo() if self.spec.get("stdin") else None
            self.process = await spawn(argv, self.env, self.cwd, self.log_path(), launcher, spec_path, fifo)
        except StartError as err:
            self._waiting(err.reason, err.message)
            return False
        except OSError as err:
            self._waiting("RunContainerError", str(err))
            return False
        self.record.container_id = f"skiff://{uuid.uuid4().hex}"
        self.ctx.event("Normal", "Created", f"Created container {self.name}")
        self.ctx.event("Normal", "Started", f"Started container {self.name}")
        self._set_running()
        await self._post_start()
        return True

    def _set_running(self) -> None:
        assert self.process is not None
        self.record.state = {"running": {"startedAt": rfc3339(self.process.started_at)}}
        self.record.started = "startupProbe" not in self.spec
        self._started_event = asyncio.Event()
        if self.record.started:
            self._started_event.set()
        self.record.ready = self.record.started and "readinessProbe" not in self.spec
        self._start_probes()
        self.ctx.notify()

    def adopt(self, process: ContainerProcess, state: dict[str, Any]) -> None:
        self.process = process
        self.record.restart_count = int(state.get("restartCount", 0))
        self.record.container_id = state.get("containerID", "")
        self.record.image_id = state.get("imageID", "")
        self.record.last_state = state.get("lastState") or {}
        self.env = state.get("env") or {}
        self.cwd = state.get("cwd") or "/"
        self.rootfs = state.get("rootfs")  # exec/probes into an adopted imported-image container enter its root
        user = state.get("imageUser")
        self.image_user = (int(user[0]), None if user[1] is None else int(user[1])) if user else None
        self._set_running()

    def to_state(self) -> dict[str, Any]:
        base = self.process.to_state() if self.process is not None and self.process.alive() else {}
        return {
            **base,
            "restartCount": self.record.restart_count,
            "containerID": self.record.container_id,
            "imageID": self.record.image_id,
            "lastState": self.record.last_state,
            "env": self.env,
            "cwd": self.cwd,
            "rootfs": self.rootfs,
            "imageUser": list(self.image_user) if self.image_user else None,
        }

    async def _post_start(self) -> None:
        handler = ((self.spec.get("lifecycle") or {}).get("postStart")) or None
        if handler is None:
            return
        ok, message = await run_handler(handler, self.spec, self.ctx.pod_ip, self.exec_env())
        if not ok and self.process is not None:
            log.warning("pod %s container %s: postStart hook failed: %s", self.ctx.key, self.name, message)
            await self.process.terminate(self.ctx.grace_seconds())

    def exec_env(self) -> ExecEnv:
        """Exec probes and hooks see what the container sees: its mounts (via nsenter), env and workingDir."""
        if self.ctx.node.isolate and self.process is not None:
            identity = self._identity()
            user: list[str] = []
            if "runAsUser" in identity:
                user = [f"--setgid={identity.get('runAsGroup', 0)}", f"--setuid={identity['runAsUser']}"]
            prefix = (
                "nsenter", "--target", str(self.process.pid), "--mount", "--uts",
                *(("--root",) if self.rootfs is not None else ()), f"--wdns={self.cwd}", *user, "--",
            )  # fmt: skip
            return ExecEnv(self.env, self.cwd, prefix)
        return ExecEnv(self.env, self.cwd)

    def _waiting(self, reason: str, message: str) -> None:
        self.record.state = {"waiting": {"reason": reason, "message": message}}
        self.record.ready = False
        self.ctx.notify()

    # ---- probes -------------------------------------------------------------------------------------
    def _start_probes(self) -> None:
        self.stop_probes()
        for kind in ("startup", "readiness", "liveness"):
            probe = self.spec.get(f"{kind}Probe")
            if probe:
                loop = ProbeLoop(
                    kind,
                    probe,
                    self.spec,
                    self.ctx.pod_ip,
                    self.exec_env(),
                    self._probe_callback(kind),
                )
                self._probes.append(asyncio.create_task(self._gated(kind, loop)))

    def _probe_callback(self, kind: str) -> Callable[[bool, str], None]:
        def changed(ok: bool, message: str) -> None:
            self._probe_changed(kind, ok, message)

        return changed

    async def _gated(self, kind: str, loop: ProbeLoop) -> None:
        """Readiness and liveness start once the startup probe succeeded, as upstream."""
        if kind != "startup" and not self.record.started:
            await self._started_event.wait()
        await loop.run()

    def _probe_changed(self, kind: str, ok: bool, message: str) -> None:
        if not ok:
            self.ctx.event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}")
        if kind == "startup" and ok:
            self.record.started = True
            self._started_event.set()
            self.record.ready = "readinessProbe" not in self.spec
        elif kind == "readiness":
            self.record.ready = ok and self.record.running()
        elif not ok and self.process is not None:
            log.info(
                "pod %s container %s failed %s probe, will be restarted: %s", self.ctx.key, self.name, kind, message
            )
            self.ctx.event("Normal", "Killing", f"Container {self.name} failed {kind} probe, will be restarted")
            kill = asyncio.create_task(self.process.terminate(self.ctx.grace_seconds()))
            self._kills.add(kill)
            kill.add_done_callback(self._kills.discard)
        self.ctx.notify()

    def stop_probes(self) -> None:
        for task in self._probes:
            task.cancel()
        self._probes = []

    # ---- exits --------------------------------------------------------------------------------------
    async def wait_exit(self) -> dict[str, Any]:
        """Wait for the running process; records and returns the terminated state."""
        assert self.process is not None
        code, sig = await self.process.wait()
        self.stop_probes()
        finished = time.time()
        oom = await asyncio.to_thread(self.ctx.node.cgroups.oom_killed, self.ctx.uid, self.name)
        if code is None:
            term: dict[str, Any] = {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the kubelet restarted",
            }
        else:
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            term = {"exitCode": code, "reason": reason}
            if sig:
                term["signal"] = sig
        term["startedAt"] = rfc3339(self.process.started_at)
        term["finishedAt"] = rfc3339(finished)
        term["containerID"] = self.record.container_id
        message = await asyncio.to_thread(self._termination_message, code)
        if message:
            term["message"] = message
        self.record.state = {"terminated": term}
        self.record.ready = False
        self.ctx.notify()
        return term

    def _termination_message(self, code: int | None) -> str:
        path = self.ctx.pod_dir / "containers" / self.name / "termination-log"
        with contextlib.suppress(OSError):
            text = path.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
            if text:
                return text
        if self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code not in (0, None):
            with contextlib.suppress(OSError):
                lines = self.log_path().read_bytes()[-2048:].decode(errors="replace").splitlines()[-80:]
                return "\n".join(lines)
        return ""

    async def stop(self, grace_s: float) -> None:
        """preStop hook, then SIGTERM/SIGKILL within the grace period (upstream killContainer)."""
        self.stopping = True
        self.stop_probes()
        if self.process is None or not self.process.alive():
            return
        started = time.monotonic()
        self.ctx.event("Normal", "Killing", f"Stopping container {self.name}")
        handler = (self.spec.get("lifecycle") or {}).get("preStop")
        if handler:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await run_handler(handler, self.spec, self.ctx.pod_ip, self.exec_env())
        remaining = max(grace_s - (time.monotonic() - started), 2.0 if handler else 0.0)
        await self.process.terminate(remaining)
