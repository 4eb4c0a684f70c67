"""``skiff controller-manager`` as processes: leader election hands over, SIGTERM exits 0 and releases the Lease."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import close_client, container, eventually, new_namespace, pods_of

from skiff.cli import controller_manager as cm
from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import LEASES, REPLICASETS

# Until "controller_manager" is listed in skiff.cli.main.SUBCOMMANDS, run the subcommand through its own register().
LAUNCH = (
    "import argparse, asyncio, logging, sys\n"
    "from skiff.cli import controller_manager as cm\n"
    "logging.basicConfig(level='INFO', stream=sys.stderr)\n"
    "parser = argparse.ArgumentParser(prog='skiff')\n"
    "cm.register(parser.add_subparsers(dest='command'))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(asyncio.run(args.func(args)))\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cm-cli")) as srv:
        yield srv


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.health = ""

    async def leading(self) -> bool:
        async with aiohttp.ClientSession() as session, session.get(f"{self.health}/metrics") as resp:
            return "skiff_controller_manager_leader 1" in (await resp.text()).splitlines()


@asynccontextmanager
async def controller_manager(server: RunningApiServer, tmp: Path, name: str) -> AsyncIterator[Proc]:
    log = tmp / f"{name}.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAUNCH, "controller-manager", "--kubeconfig", str(server.kubeconfig),
            "--controllers", "replicaset", "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    handle = Proc(proc, log)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = re.search(r"(http://\S+)", line)
        assert match, f"no health address in {line!r}: {log.read_text()}"
        handle.health = match.group(1)
        yield handle
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, f"controller-manager exited {code}: {log.read_text()}"


async def test_leader_election_hands_over(server: RunningApiServer, tmp_path: Path) -> None:
    client = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig))
    try:
        async with (
            controller_manager(server, tmp_path, "a") as first,
            controller_manager(server, tmp_path, "b") as second,
        ):

            async def one_leader() -> Proc | None:
                states = [await first.leading(), await second.leading()]
                return (first if states[0] else second) if states.count(True) == 1 else None

            leader = await eventually(one_leader, "exactly one leader")
            follower = second if leader is first else first
            lease = await client.get(LEASES, "kube-controller-manager", "kube-system")
            holder = lease["spec"]["holderIdentity"]
            ns = await new_namespace(client, "cli")
            labels = {"app": "le"}
            body = {
                "metadata": {"name": "le"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
                },
            }
            await client.create(REPLICASETS, body, ns)

            async def pods(n: int) -> bool:
                return len(await pods_of(client, ns, "app=le")) == n

            await eventually(lambda: pods(1), "the leader creating a pod")
            leader.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(leader.proc.wait(), 30) == 0
            await eventually(follower.leading, "the other process taking over")
            lease = await client.get(LEASES, "kube-controller-manager", "kube-system")
            assert lease["spec"]["holderIdentity"] != holder
            await client.patch(REPLICASETS, "le", {"spec": {"replicas": 2}}, ns)
            await eventually(lambda: pods(2), "the new leader scaling up")
    finally:
        await close_client(client)


def test_flags_become_controller_options() -> None:
    parser = argparse.ArgumentParser()
    cm.register(parser.add_subparsers())
    args = parser.parse_args(
        ["controller-manager", "--controllers", "*,-garbagecollector", "--leader-elect=false",
         "--node-monitor-grace-period", "40s", "--leader-elect-retry-period", "500ms",
         "--local-volume-dir", "/srv/volumes", "--controller-option", "custom=1",
         "--cluster-signing-cert-file", "/pki/ca.crt", "--cluster-signing-key-file", "/pki/ca.key",
         "--cluster-signing-duration", "8760h0m0s"]
    )  # fmt: skip
    flags = cm.ControllerManagerFlags.from_args(args)
    assert flags.controllers == ("*", "-garbagecollector")
    assert flags.leader_elect is False and flags.retry_period_s == 0.5
    assert flags.lease_name == "kube-controller-manager" and flags.lease_namespace == "kube-system"
    assert flags.options == {
        "node-monitor-grace-period": 40.0,
        "local_volume_dir": "/srv/volumes",
        "custom": "1",
        "cluster-signing-cert-file": "/pki/ca.crt",
        "cluster-signing-key-file": "/pki/ca.key",
        "cluster-signing-duration": 365 * 24 * 3600.0,
    }
