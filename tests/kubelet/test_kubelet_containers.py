"""Container behaviour with a real kubelet: env, restarts, crash loops, bad commands and images, deletion."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from apiserver_harness import RunningApiServer
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_gone, wait_pod

from skiff.client.resources import CONFIGMAPS, EVENTS, PODS, SERVICES


def _waiting_reason(pod: dict) -> str | None:  # type: ignore[type-arg]
    return (container_status(pod).get("state") or {}).get("waiting", {}).get("reason")


def _log_text(kubelet: KubeletProcess, pod: dict, container: str, restart: int = 0) -> str:  # type: ignore[type-arg]
    path = kubelet.root / "pods" / pod["metadata"]["uid"] / "logs" / container / f"{restart}.log"
    return path.read_text() if path.exists() else ""


async def test_env_expansion_and_value_from(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        await client.create(
            CONFIGMAPS,
            {"metadata": {"name": "env-cm", "namespace": "default"}, "data": {"color": "blue", "size": "xl"}},
        )
        container = {
            "name": "main",
            "image": "python:3.11",
            "command": ["python3", "-c", "import os, sys; print(' '.join(sys.argv[1:]), os.environ['CFG_size'])"],
            "args": [
                "name=$(MY_NAME)",
                "ip=$(MY_IP)",
                "color=$(COLOR)",
                "esc=$$(MY_NAME)",
                "unknown=$(NOPE)",
                "mem=$(MEM)",
                "greet=$(GREETING)",
                "ns=$(POD_NAMESPACE)",
            ],
            "env": [
                {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "color"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "GREETING", "value": "hi-$(MY_NAME)"},
                {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
            ],
            "envFrom": [{"configMapRef": {"name": "env-cm"}, "prefix": "CFG_"}],
            "resources": {"limits": {"memory": "64Mi"}},
        }
        await client.create(PODS, pod_spec("env-pod", kubelet.name, [container], restartPolicy="Never"))
        pod = await wait_pod(client, "env-pod", lambda p: p["status"].get("phase") == "Succeeded")
        line = _log_text(kubelet, pod, "main")
        ip = pod["status"]["podIP"]
        assert (
            f"name=env-pod ip={ip} color=blue esc=$(MY_NAME) unknown=$(NOPE) mem=64 greet=hi-env-pod ns=default xl"
            in line
        )
        state = container_status(pod)["state"]["terminated"]
        assert state["exitCode"] == 0 and state["reason"] == "Completed"


async def test_killed_container_restarts_with_count(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "sleeper", "image": "busybox", "command": ["sleep", "3600"]}
        await client.create(PODS, pod_spec("restart-me", kubelet.name, [container]))
        pod = await wait_pod(client, "restart-me", lambda p: container_status(p).get("ready") is True)
        state = kubelet.root / "pods" / pod["metadata"]["uid"] / "state.json"
        import json

        pid = json.loads(state.read_text())["containers"]["sleeper"]["pid"]
        os.kill(pid, signal.SIGKILL)
        pod = await wait_pod(
            client,
            "restart-me",
            lambda p: container_status(p).get("restartCount") == 1 and container_status(p)["ready"],
        )
        last = container_status(pod)["lastState"]["terminated"]
        assert last["exitCode"] == 137 and last["reason"] == "Error"


async def test_crash_loop_back_off(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "crash", "image": "busybox", "command": ["sh", "-c", "echo boom; exit 3"]}
        await client.create(PODS, pod_spec("crasher", kubelet.name, [container]))
        pod = await wait_pod(client, "crasher", lambda p: _waiting_reason(p) == "CrashLoopBackOff")
        status = container_status(pod)
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert "back-off 10s restarting failed container=crash" in status["state"]["waiting"]["message"]
        assert pod["status"]["phase"] == "Running"
        events = (await client.list(EVENTS, "default"))["items"]
        reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == "crasher"}
        assert {"Pulled", "Created", "Started", "BackOff"} <= reasons


async def test_missing_command_reports_run_container_error(
    apiserver: RunningApiServer, kubelet: KubeletProcess
) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "nocmd", "image": "busybox", "command": ["no-such-command-xyz"]}
        await client.create(PODS, pod_spec("nocmd", kubelet.name, [container], restartPolicy="Never"))
        pod = await wait_pod(client, "nocmd", lambda p: p["status"].get("phase") == "Failed")
        term = container_status(pod)["state"]["terminated"]
        assert term["reason"] == "ContainerCannotRun" and term["exitCode"] == 127
        assert 'exec: "no-such-command-xyz": executable file not found in $PATH' in term["message"]


async def test_unknown_image_image_pull_back_off(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "img", "image": "example.invalid/nothing:1.0", "command": ["true"]}
        await client.create(PODS, pod_spec("badimage", kubelet.name, [container]))
        pod = await wait_pod(client, "badimage", lambda p: _waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"))
        pod = await wait_pod(client, "badimage", lambda p: _waiting_reason(p) == "ImagePullBackOff")
        assert "example.invalid/nothing:1.0" in container_status(pod)["state"]["waiting"]["message"]
        assert pod["status"]["phase"] == "Pending"


async def test_graceful_deletion_kills_sigterm_ignoring_group(
    apiserver: RunningApiServer, kubelet: KubeletProcess
) -> None:
    async with client_for(apiserver) as client:
        script = "trap '' TERM; sleep 3600 & trap '' TERM; while true; do sleep 1; done"
        container = {"name": "stubborn", "image": "busybox", "command": ["sh", "-c", script]}
        await client.create(PODS, pod_spec("stubborn", kubelet.name, [container]))
        pod = await wait_pod(client, "stubborn", lambda p: container_status(p).get("ready") is True)
        import json

        state = json.loads((kubelet.root / "pods" / pod["metadata"]["uid"] / "state.json").read_text())
        pgid = state["containers"]["stubborn"]["pid"]
        await asyncio.sleep(0.5)
        await client.delete(PODS, "stubborn", "default", grace_period_seconds=2)
        await wait_gone(client, "stubborn")
        try:
            os.killpg(pgid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "the container's process group outlived the pod"
        assert not await asyncio.to_thread(Path(f"/proc/{pgid}").exists)


async def test_service_env_and_attach_stdin(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        svc = {
            "metadata": {"name": "backend-api", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"app": "none"}},
        }
        svc = await client.create(SERVICES, svc)
        ip = svc["spec"]["clusterIP"]
        script = (
            "import os, sys\n"
            "print(os.environ['BACKEND_API_SERVICE_HOST'], os.environ['BACKEND_API_SERVICE_PORT_HTTP'], flush=True)\n"
            "for line in sys.stdin:\n"
            "    print('got', line.strip(), flush=True)"
        )
        container = {"name": "echo", "image": "python:3", "command": ["python3", "-c", script], "stdin": True}
        # The kubelet learns of the new Service through its informer; a pod started before that (as with the
        # real kubelet) lacks the variables, so a pod that missed them is replaced, a bounded number of times.
        for attempt in range(10):
            name = f"stdin-echo-{attempt}"
            await client.create(PODS, pod_spec(name, kubelet.name, [container]))
            pod = await wait_pod(client, name, lambda p: container_status(p).get("restartCount") is not None)
            for _ in range(200):  # the first line: the variables, or the KeyError that says they were missing
                if "\n" in _log_text(kubelet, pod, "echo"):
                    break
                await asyncio.sleep(0.05)
            if "KeyError" not in _log_text(kubelet, pod, "echo"):
                break
            await client.delete(PODS, name, "default", grace_period_seconds=0)
        fifo = kubelet.root / "pods" / pod["metadata"]["uid"] / "containers" / "echo" / "stdin"
        fd = await asyncio.to_thread(os.open, fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"ping\n")
        os.close(fd)
        for _ in range(100):
            if "got ping" in _log_text(kubelet, pod, "echo"):
                break
            await asyncio.sleep(0.1)
        assert _log_text(kubelet, pod, "echo") == f"{ip} 8080\ngot ping\n"


async def test_active_deadline_fails_the_pod(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "long", "image": "busybox", "command": ["sleep", "3600"]}
        await client.create(PODS, pod_spec("deadline", kubelet.name, [container], activeDeadlineSeconds=2))
        pod = await wait_pod(client, "deadline", lambda p: p["status"].get("phase") == "Failed")
        assert pod["status"]["reason"] == "DeadlineExceeded"
        assert "terminated" in container_status(pod)["state"]
