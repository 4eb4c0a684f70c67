"""Volumes at their mountPath, ConfigMap updates, memory limits, and kubelet restart adoption (root only)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from apiserver_harness import RunningApiServer
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_pod

from skiff.client.resources import CONFIGMAPS, PODS

READ_LOOP = "while true; do cat /etc/cfg/greeting > /tmp/out-$(POD_NAME) 2>&1; echo; sleep 0.2; done"


async def test_configmap_volume_mounted_and_updated(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    assert os.geteuid() == 0, "mount namespaces need root"
    async with client_for(apiserver) as client:
        await client.create(
            CONFIGMAPS, {"metadata": {"name": "vol-cm", "namespace": "default"}, "data": {"greeting": "hello"}}
        )
        container = {
            "name": "reader",
            "image": "busybox",
            "command": ["sh", "-c", "cat /etc/cfg/greeting; echo; cat /etc/resolv.conf; sleep 3600"],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
        }
        volumes = [{"name": "cfg", "configMap": {"name": "vol-cm"}}]
        await client.create(PODS, pod_spec("cm-reader", kubelet.name, [container], volumes=volumes))
        pod = await wait_pod(client, "cm-reader", lambda p: container_status(p).get("ready") is True)
        uid = pod["metadata"]["uid"]
        log = kubelet.root / "pods" / uid / "logs" / "reader" / "0.log"
        for _ in range(50):
            if "nameserver" in log.read_text():
                break
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert text.startswith("hello\n")
        assert "nameserver 127.253.0.10" in text and "search default.svc.cluster.local" in text
        assert not await asyncio.to_thread(os.path.exists, "/etc/cfg/greeting"), (
            "the mount leaked into the host's namespace"
        )
        volume_file = kubelet.root / "pods" / uid / "volumes" / "cfg" / "greeting"
        assert volume_file.read_text() == "hello"
        cm = await client.get(CONFIGMAPS, "vol-cm", "default")
        cm["data"]["greeting"] = "bonjour"
        await client.update(CONFIGMAPS, cm)
        for _ in range(150):
            if volume_file.read_text() == "bonjour":
                break
            await asyncio.sleep(0.2)
        assert volume_file.read_text() == "bonjour"
        pid = json.loads((kubelet.root / "pods" / uid / "state.json").read_text())["containers"]["reader"]["pid"]
        inside = Path(f"/proc/{pid}/root/etc/cfg/greeting")  # the file as the container's mount namespace sees it
        assert await asyncio.to_thread(inside.read_text) == "bonjour"


async def test_memory_limit_oom_killed(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {
            "name": "hog",
            "image": "python:3",
            "command": ["python3", "-c", "x = bytearray(200 * 1024 * 1024); print(len(x))"],
            "resources": {"limits": {"memory": "50Mi"}},
        }
        await client.create(PODS, pod_spec("hog", kubelet.name, [container], restartPolicy="Never"))
        pod = await wait_pod(client, "hog", lambda p: p["status"].get("phase") == "Failed")
        term = container_status(pod)["state"]["terminated"]
        assert term["reason"] == "OOMKilled" and term["exitCode"] == 137


async def test_kubelet_restart_adopts_running_pod(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "keeper", "image": "busybox", "command": ["sleep", "3600"]}
        await client.create(PODS, pod_spec("keeper", kubelet.name, [container]))
        pod = await wait_pod(client, "keeper", lambda p: container_status(p).get("ready") is True)
        state_file = kubelet.root / "pods" / pod["metadata"]["uid"] / "state.json"
        pid = json.loads(state_file.read_text())["containers"]["keeper"]["pid"]
        kubelet.proc.kill()  # type: ignore[union-attr]  # a crash: nothing is stopped, nothing is saved at exit
        kubelet.proc.wait(timeout=60)  # type: ignore[union-attr]
        os.kill(pid, 0)  # still running without its kubelet
        kubelet.start(stop_pods_on_exit=False)
        await _wait_adopted(kubelet, pid, 1)
        assert kubelet.stop() == 0  # graceful, without --stop-pods-on-exit: pods keep running
        os.kill(pid, 0)
        kubelet.start()
        await _wait_adopted(kubelet, pid, 2)
        pod = await wait_pod(client, "keeper", lambda p: container_status(p).get("ready") is True)
        assert json.loads(state_file.read_text())["containers"]["keeper"]["pid"] == pid
        os.kill(pid, 0)
        status = container_status(pod)
        assert status["restartCount"] == 0
        sleepers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep\x003600\x00"]
        assert sleepers.count(str(pid)) == 1
        assert len([p for p in sleepers if _ppid_pgid(p)[1] == pid]) == 1, "a duplicate container process was started"


async def _wait_adopted(kubelet: KubeletProcess, pid: int, times: int) -> None:
    line = f"adopted container keeper (pid {pid})"
    for _ in range(300):
        if kubelet.logs().count(line) >= times:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"kubelet run {kubelet.runs} did not adopt pid {pid}:\n{kubelet.logs()}")


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


def _ppid_pgid(pid: str) -> tuple[int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


async def test_run_as_user_and_pod_hostname(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {
            "name": "who",
            "image": "busybox",
            "command": ["sh", "-c", "id -u; id -g; hostname"],
            "securityContext": {"runAsUser": 1234},
        }
        body = pod_spec(
            "whoami",
            kubelet.name,
            [container],
            restartPolicy="Never",
            securityContext={"runAsUser": 1000, "runAsGroup": 2000},
        )
        await client.create(PODS, body)
        pod = await wait_pod(client, "whoami", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
        assert pod["status"]["phase"] == "Succeeded", pod["status"]
        log = kubelet.root / "pods" / pod["metadata"]["uid"] / "logs" / "who" / "0.log"
        assert log.read_text() == "1234\n2000\nwhoami\n"
