"""The etcd operator on a real ``skiff up``: create, heal, upgrade under writes, back up and restore a big store.

Run from the repository root::

    python bench/etcd_operator_bench.py            # 1 GiB store for backup/restore (a few minutes)
    python bench/etcd_operator_bench.py --quick    # 64 MiB store, one run of each: a quick look

Starts ``skiff up --no-etcd-operator`` on a fresh data dir and ``skiff etcd-operator``
(reconcile interval 1 s, quorum-loss grace 5 s) as processes of their own, and
measures what issue D asks for (section 4), against real etcd 3.4.23 / 3.5.1 members:

* create: EtcdCluster size 3 → ``status.ready`` 3/3 and every member's Maintenance.Status
  names a leader (and etcd lists 3 started voters); --repeats times, each cluster deleted before the next;
* heal: (a) one member's etcd process SIGKILLed (found by ``--name=<member>`` in /proc) → a new
  process and the cluster healthy again; (b) one member's pod and PVC deleted (its data gone) →
  replaced by a new member, 3/3 healthy; each --repeats times on the last cluster, a different member
  each time (followers first);
* upgrade 3.4.23 → 3.5.1 of 3 members while a client puts a key every ~10 ms (a failed put is retried
  on the next member and counted): duration (patch → ``status.currentVersion`` 3.5.1 and every member
  reports 3.5.x), writes acknowledged / failed attempts / lost (every acknowledged key read back), and
  the most members unavailable at once (every member's Status sampled every 0.25 s);
* backup and restore of a --store-mb MiB store (1 MiB values; the cluster's ``spec.pod.etcdEnv`` lifts
  etcd's 2 GiB quota): one-shot Local EtcdBackup → ``status.succeeded``; EtcdRestore of it →
  ``status.phase`` Succeeded, then the keys counted and sampled back; then heal (b) again, with the
  store in place (the new member receives all of it from the leader).

Prints figures, writes OUT/etcd-operator.json (``-quick`` suffix with --quick) and removes its data dir.
Every wait has a deadline and --timeout bounds the whole run; both processes get SIGTERM at the end
(``skiff up`` stops its pods itself).  Figures only: nothing is asserted beyond "the step finished".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import orjson

from skiff.client import ApiClient, ClientConfig
from skiff.client.errors import ApiError, is_not_found
from skiff.client.resources import PERSISTENTVOLUMECLAIMS, PODS
from skiff.etcd_protos import load
from skiff.etcdoperator.etcdclient import EndpointStatus, EtcdClient, EtcdError, Member
from skiff.etcdoperator.resources import API_VERSION, ETCDBACKUPS, ETCDCLUSTERS, ETCDRESTORES
from storebench.runlog import log

T = TypeVar("T")
NS = "default"
MIB = 1024 * 1024
FROM, TO = "3.4.23", "3.5.1"
#: etcd's default backend quota is 2 GiB; 8 GiB (etcd's suggested maximum) leaves room for a 1 GiB store.
QUOTA_ENV = {"name": "ETCD_QUOTA_BACKEND_BYTES", "value": str(8 * 1024 * MIB)}
PVC_SPEC = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}}
PROBE_S = 1.0
SAMPLE_EVERY_S = 0.25
WRITE_EVERY_S = 0.01
STORE_PREFIX = "/bench/store/"
UPGRADE_PREFIX = "/bench/upgrade/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB store and one run of each step")
    parser.add_argument("--store-mb", type=int, default=None, help="MiB to back up and restore (default 1024)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of create and heal (default 3; 1 with --quick)")
    parser.add_argument("--fill-concurrency", type=int, default=4, help="puts in flight while filling (default 4)")
    parser.add_argument("--timeout", type=float, default=2400.0, help="bound on the whole run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (for a post-mortem)")
    parser.add_argument("--out", default="bench/out", help="directory for etcd-operator.json (default bench/out)")
    args = parser.parse_args(argv)
    args.store_mb = args.store_mb or (64 if args.quick else 1024)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


# -- the two processes -----------------------------------------------------------------------------------


@dataclass
class Process:
    """A ``skiff`` subcommand in its own session, its output in a file; ready once ``ready`` is printed."""

    name: str
    argv: list[str]
    output: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self, ready: str, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for a polled file
        with self.output.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not re.search(rf"^{re.escape(ready)}", self.output.read_text(errors="replace"), re.M):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready:\n{self.tail()}")
            await asyncio.sleep(0.2)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, timeout: float = 120) -> int | None:  # noqa: ASYNC109 - SIGTERM, then SIGKILL past it
        """SIGTERM to its process group and wait; SIGKILL the group past ``timeout``."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc else None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log(f"{self.name} ignored SIGTERM for {timeout:.0f}s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return await proc.wait()


# -- etcd, seen from the bench ------------------------------------------------------------------------------


async def wait_for(
    what: str,
    check: Callable[[], Awaitable[T | None]],
    timeout: float,  # noqa: ASYNC109 - the deadline names the step that missed it
    every: float = 0.1,
) -> T:
    """Poll ``check()`` until it returns something truthy; TimeoutError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(every)


async def probe(url: str) -> EndpointStatus | None:
    """Maintenance.Status of the member at ``url`` on a fresh channel (a cached one may still be backing off)."""
    try:
        async with EtcdClient(url, timeout=PROBE_S) as client:
            return await client.status()
    except EtcdError:
        return None


async def member_list(urls: list[str]) -> list[Member] | None:
    for url in urls:
        try:
            async with EtcdClient(url, timeout=PROBE_S) as client:
                return await client.member_list()
        except EtcdError:
            continue
    return None


def etcd_pid(member: str) -> int | None:
    """PID of the etcd process started with ``--name=<member>`` (scanning /proc)."""
    flag = f"--name={member}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and Path(argv[0]).name == "etcd" and flag in argv:
            return int(entry.name)
    return None


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@dataclass
class Bench:
    api: ApiClient
    backup_dir: Path

    async def cluster(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.api.get(ETCDCLUSTERS, name, NS)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise

    async def pods(self, name: str) -> dict[str, str]:
        """Member pod name → pod IP, for live pods that have an IP."""
        listed = await self.api.list(PODS, NS, label_selector=f"etcd_cluster={name}")
        return {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in listed.get("items") or []
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
        }

    async def urls(self, name: str) -> list[str]:
        return sorted(f"http://{ip}:2379" for ip in (await self.pods(name)).values())

    async def healthy(self, name: str, size: int, version: str | None = None) -> dict[str, EndpointStatus] | None:
        """Member → Status when ``status.ready`` is size/size, every member pod answers with a leader (at
        ``version``'s minor, if given) and etcd lists ``size`` started voters; else None."""
        obj = await self.cluster(name)
        if obj is None or (obj.get("status") or {}).get("ready") != f"{size}/{size}":
            return None
        pods = await self.pods(name)
        if len(pods) != size:
            return None
        answers = await asyncio.gather(*(probe(f"http://{ip}:2379") for ip in pods.values()))
        statuses = dict(zip(pods, answers, strict=True))
        for status in statuses.values():
            if status is None or not status.leader or status.is_learner or status.errors:
                return None
            if version is not None and not status.version.startswith(version.rsplit(".", 1)[0] + "."):
                return None
        members = await member_list(sorted(f"http://{ip}:2379" for ip in pods.values()))
        if members is None or len(members) != size or any(m.is_learner or not m.name for m in members):
            return None
        if {m.name for m in members} != set(pods):
            return None
        return {n: s for n, s in statuses.items() if s is not None}

    async def create_cluster(self, name: str, size: int, version: str, **spec: Any) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": "EtcdCluster",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"size": size, "version": version, **spec},
        }
        await self.api.create(ETCDCLUSTERS, body, NS)

    async def delete_cluster(self, name: str) -> None:
        """Delete the EtcdCluster and wait until its pods and claims are gone (the garbage collector's work)."""
        try:
            await self.api.delete(ETCDCLUSTERS, name, NS, propagation_policy="Foreground")
        except ApiError as err:
            if not is_not_found(err):
                raise

        async def gone() -> bool:
            selector = f"etcd_cluster={name}"
            pods = (await self.api.list(PODS, NS, label_selector=selector)).get("items") or []
            claims = (await self.api.list(PERSISTENTVOLUMECLAIMS, NS, label_selector=selector)).get("items") or []
            return not pods and not claims and await self.cluster(name) is None

        await wait_for(f"EtcdCluster {name} and its members deleted", gone, timeout=180, every=0.5)


def cluster_spec() -> dict[str, Any]:
    return {"pod": {"etcdEnv": [QUOTA_ENV], "persistentVolumeClaimSpec": PVC_SPEC}}


# -- create and heal ------------------------------------------------------------------------------------------


async def time_create(bench: Bench, name: str) -> float:
    started = time.monotonic()
    await bench.create_cluster(name, 3, TO, **cluster_spec())
    await wait_for(f"{name} healthy at 3", lambda: bench.healthy(name, 3), timeout=240)
    return time.monotonic() - started


def pick_victim(statuses: dict[str, EndpointStatus], spared: set[str]) -> tuple[str, bool]:
    """(member, is it the leader): a follower not hit before, else any member not hit before, else a follower.

    Why not the same member each time: the kubelet backs off restarting a container that keeps dying
    (10 s, 20 s, 40 s… as Kubernetes does), which would time the back-off, not the heal.
    """
    leader = next(s.leader for s in statuses.values())
    followers = sorted(n for n, s in statuses.items() if s.member_id != leader)
    fresh = [n for n in followers if n not in spared] or sorted(set(statuses) - spared) or followers
    victim = fresh[0]
    return victim, statuses[victim].member_id == leader


async def heal_killed_process(bench: Bench, name: str, hit: set[str]) -> dict[str, Any]:
    statuses = await wait_for(f"{name} healthy", lambda: bench.healthy(name, 3), timeout=120)
    victim, was_leader = pick_victim(statuses, hit)
    hit.add(victim)
    old = await wait_for(f"etcd process of {victim}", lambda: asyncio.to_thread(etcd_pid, victim), timeout=30)
    quota = process_env(old).get(QUOTA_ENV["name"])
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)
    log(f"  SIGKILL etcd {victim} (pid {old})")

    async def back() -> bool:
        pid = await asyncio.to_thread(etcd_pid, victim)
        return pid is not None and pid != old and await bench.healthy(name, 3) is not None

    await wait_for(f"{victim} restarted and {name} healthy", back, timeout=180)
    seconds = time.monotonic() - started
    return {"member": victim, "leader": was_leader, "seconds": seconds, "etcd_env_quota": quota}


async def heal_lost_data(bench: Bench, name: str, hit: set[str]) -> dict[str, Any]:
    statuses = await wait_for(f"{name} healthy", lambda: bench.healthy(name, 3), timeout=120)
    victim, was_leader = pick_victim(statuses, hit)
    hit.add(victim)
    started = time.monotonic()
    await bench.api.delete(PERSISTENTVOLUMECLAIMS, victim, NS)
    await bench.api.delete(PODS, victim, NS)
    log(f"  deleted pod and PVC of {victim}")

    async def replaced() -> dict[str, EndpointStatus] | None:
        healthy = await bench.healthy(name, 3)
        return healthy if healthy is not None and victim not in healthy else None

    healthy = await wait_for(f"{victim} replaced and {name} healthy", replaced, timeout=300)
    seconds = time.monotonic() - started
    [new] = sorted(set(healthy) - set(statuses))
    return {
        "member": victim,
        "leader": was_leader,
        "replacement": new,
        "seconds": seconds,
        "replacement_db_bytes": healthy[new].db_size,
    }


# -- upgrade under writes -------------------------------------------------------------------------------------


@dataclass
class Writer:
    """Puts a key every ~10 ms; a failed put is counted and retried on the next member (fresh channel)."""

    bench: Bench
    name: str
    acked: dict[str, bytes] = field(default_factory=dict)
    failed_attempts: int = 0
    errors: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        urls = await self.bench.urls(self.name)
        turn = 0
        client: EtcdClient | None = None
        try:
            while not stop.is_set():
                key, value = f"{UPGRADE_PREFIX}{len(self.acked):06d}", f"v{len(self.acked)}".encode()
                if client is None:
                    client = EtcdClient(urls[turn % len(urls)], timeout=3.0)
                try:
                    await client.put(key, value)
                except EtcdError as err:
                    self.failed_attempts += 1
                    self.errors.append(f"{client.endpoint}: {err.code.name if err.code else err}")
                    await client.close()
                    client, turn = None, turn + 1
                    if self.failed_attempts % len(urls) == 0:  # a full round failed: the pods may have moved
                        urls = await self.bench.urls(self.name) or urls
                        await asyncio.sleep(0.1)
                    continue
                self.acked[key] = value
                await asyncio.sleep(WRITE_EVERY_S)
        finally:
            if client is not None:
                await client.close()


@dataclass
class Monitor:
    """Every 0.25 s: etcd's member list, then every member's Status at its listed client URLs and its pod IP.

    A member is available when it answers as itself (the reply's member id) at any of those addresses
    (a recreated pod may have a new IP that etcd has not published yet).
    """

    bench: Bench
    name: str
    size: int
    samples: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.samples.append((time.time(), await self.sample()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, SAMPLE_EVERY_S - (time.monotonic() - started)))

    async def sample(self) -> dict[str, str]:
        pods = await self.bench.pods(self.name)
        members = await member_list(sorted(f"http://{ip}:2379" for ip in pods.values()))
        if members is None:
            return {f"member {i}": "no member list" for i in range(self.size)}

        async def answer(member: Member) -> str:
            urls = set(member.client_urls) | ({f"http://{pods[member.name]}:2379"} if member.name in pods else set())
            for status in await asyncio.gather(*(probe(u) for u in sorted(urls))):
                if status is not None and status.member_id == member.id:
                    return status.version
            return "unavailable"

        answers = await asyncio.gather(*(answer(m) for m in members))
        return {m.name or f"{m.id:x}": a for m, a in zip(members, answers, strict=True)}

    def worst(self) -> int:
        return max((sum(1 for v in s.values() if not v[:1].isdigit()) for _, s in self.samples), default=0)


async def read_back(urls: list[str], prefix: str) -> dict[bytes, bytes]:
    for url in urls:
        try:
            async with EtcdClient(url, timeout=30.0) as client:
                return await client.get_prefix(prefix)
        except EtcdError:
            continue
    raise RuntimeError(f"no member answered a read of {prefix}")


async def upgrade_under_writes(bench: Bench, name: str) -> dict[str, Any]:
    await bench.create_cluster(name, 3, FROM, repository="quay.io/coreos/etcd")
    await wait_for(f"{name} healthy at {FROM}", lambda: bench.healthy(name, 3, FROM), timeout=240)
    writer, monitor = Writer(bench, name), Monitor(bench, name, 3)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(writer.run(stop)), asyncio.create_task(monitor.run(stop))]
    try:
        await asyncio.sleep(2)  # some writes against the old version first
        started = time.monotonic()
        await bench.api.patch(ETCDCLUSTERS, name, {"spec": {"version": TO}}, NS)
        log(f"  patched {name} to {TO}")

        async def rolled() -> bool:
            obj = await bench.cluster(name)
            if ((obj or {}).get("status") or {}).get("currentVersion") != TO:
                return False
            return await bench.healthy(name, 3, TO) is not None

        await wait_for(f"{name} at {TO}", rolled, timeout=300, every=0.25)
        duration = time.monotonic() - started
        await asyncio.sleep(2)  # and some against the new one
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    found = await read_back(await bench.urls(name), UPGRADE_PREFIX)
    lost = sorted(k for k, v in writer.acked.items() if found.get(k.encode()) != v)
    attempts = len(writer.acked) + writer.failed_attempts
    return {
        "seconds": duration,
        "writes_acked": len(writer.acked),
        "failed_attempts": writer.failed_attempts,
        "failed_share": writer.failed_attempts / max(attempts, 1),
        "lost": len(lost),
        "samples": len(monitor.samples),
        "max_unavailable": monitor.worst(),
        "errors": sorted(set(writer.errors))[:10],
    }


# -- backup and restore ---------------------------------------------------------------------------------------


async def fill(urls: list[str], megabytes: int, concurrency: int) -> dict[str, Any]:
    """``megabytes`` keys of 1 MiB each (random bytes, key number first), ``concurrency`` puts in flight."""
    blob = os.urandom(MIB)
    pending = list(range(megabytes))
    started = time.monotonic()

    async def worker(i: int) -> None:
        async with EtcdClient(urls[i % len(urls)], timeout=60.0) as client:
            while pending:
                n = pending.pop()
                for attempt in range(3):
                    try:
                        await client.put(f"{STORE_PREFIX}{n:06d}", store_value(blob, n))
                        break
                    except EtcdError:
                        if attempt == 2:
                            raise
                        await asyncio.sleep(1)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    seconds = time.monotonic() - started
    return {"keys": megabytes, "seconds": seconds, "mib_per_s": megabytes / seconds}


def store_value(blob: bytes, n: int) -> bytes:
    head = f"{n:08d}".encode()
    return head + blob[len(head) :]


async def count_keys(url: str, prefix: str) -> int:
    pb = load()
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    async with grpc.aio.insecure_channel(url.removeprefix("http://")) as channel:
        request = pb.rpc_pb2.RangeRequest(key=prefix.encode(), range_end=end.encode(), count_only=True)
        reply = await pb.rpc_pb2_grpc.KVStub(channel).Range(request, timeout=30.0)
        return int(reply.count)


async def check_store(urls: list[str], blob_keys: int) -> dict[str, Any]:
    """Count the store's keys and compare the first bytes of a few values (the values are key-stamped)."""
    count = await count_keys(urls[0], STORE_PREFIX)
    sampled = sorted({0, blob_keys // 2, blob_keys - 1})
    ok = 0
    async with EtcdClient(urls[0], timeout=30.0) as client:
        for n in sampled:
            value = await client.get(f"{STORE_PREFIX}{n:06d}")
            ok += bool(value and len(value) == MIB and value.startswith(f"{n:08d}".encode()))
    return {"keys": count, "sampled_ok": f"{ok}/{len(sampled)}"}


async def backup_and_restore(bench: Bench, name: str, megabytes: int, concurrency: int) -> dict[str, Any]:
    await wait_for(f"{name} healthy", lambda: bench.healthy(name, 3), timeout=120)
    urls = await bench.urls(name)
    log(f"  filling {name} with {megabytes} MiB ({concurrency} puts in flight)")
    filled = await fill(urls, megabytes, concurrency)
    statuses = await wait_for(f"{name} healthy", lambda: bench.healthy(name, 3), timeout=120)
    db_size = max(s.db_size for s in statuses.values())
    log(f"  filled in {filled['seconds']:.1f}s; db size {db_size / MIB:.0f} MiB; backing up")
    path = f"{name}/etcd.backup"
    body = {
        "apiVersion": API_VERSION,
        "kind": "EtcdBackup",
        "metadata": {"name": f"{name}-backup", "namespace": NS},
        "spec": {
            "etcdCluster": {"name": name},
            "storageType": "Local",
            "local": {"path": path},
            "backupPolicy": {"timeoutInSecond": 900},
        },
    }
    started = time.monotonic()
    await bench.api.create(ETCDBACKUPS, body, NS)

    async def backed_up() -> dict[str, Any] | None:
        status = (await bench.api.get(ETCDBACKUPS, f"{name}-backup", NS)).get("status") or {}
        if status.get("succeeded") is False and status.get("reason"):
            raise RuntimeError(f"backup failed: {status['reason']}")
        return status if status.get("succeeded") is True else None

    status = await wait_for("EtcdBackup succeeded", backed_up, timeout=900, every=0.25)
    backup_s = time.monotonic() - started
    record = (status.get("backups") or [{}])[0]
    size = int(record.get("size") or (bench.backup_dir / path).stat().st_size)
    log(f"  backup: {backup_s:.1f}s, {size / MIB:.0f} MiB; restoring")

    restore = {
        "apiVersion": API_VERSION,
        "kind": "EtcdRestore",
        "metadata": {"name": f"{name}-restore", "namespace": NS},
        "spec": {"etcdCluster": {"name": name}, "backupStorageType": "Local", "local": {"path": path}},
    }
    started = time.monotonic()
    await bench.api.create(ETCDRESTORES, restore, NS)

    async def restored() -> dict[str, Any] | None:
        status = (await bench.api.get(ETCDRESTORES, f"{name}-restore", NS)).get("status") or {}
        if status.get("phase") == "Failed":
            raise RuntimeError(f"restore failed: {status.get('reason')}")
        return status if status.get("phase") == "Succeeded" else None

    restore_status = await wait_for("EtcdRestore Succeeded", restored, timeout=1200, every=0.25)
    restore_s = time.monotonic() - started
    healthy_after = await bench.healthy(name, 3) is not None
    checked = await check_store(await bench.urls(name), megabytes)
    log(f"  restored in {restore_s:.1f}s; deleting one member's pod and PVC of the full store")
    healed = await heal_lost_data(bench, name, set())
    return {
        "heal_lost_data": healed,
        "store_mib": megabytes,
        "fill": filled,
        "db_size_bytes": db_size,
        "backup": {"seconds": backup_s, "size_bytes": size, "mb_per_s": size / MIB / backup_s},
        "restore": {
            "seconds": restore_s,
            "mb_per_s": size / MIB / restore_s,
            "restored_revision": restore_status.get("restoredRevision"),
            "healthy_at_3_when_succeeded": healthy_after,
            **checked,
        },
    }


# -- the run --------------------------------------------------------------------------------------------------


async def phases(bench: Bench, args: argparse.Namespace, results: dict[str, Any]) -> None:
    creates: list[float] = []
    for i in range(1, args.repeats + 1):
        name = f"bench{i}"
        log(f"create {name}: 3 members at {TO}")
        creates.append(await time_create(bench, name))
        log(f"  healthy at 3 in {creates[-1]:.1f}s")
        if i < args.repeats:
            await bench.delete_cluster(name)
    results["create_s"] = {"runs": creates, "median": statistics.median(creates)}
    kept = f"bench{args.repeats}"

    for key, heal, what in (
        ("heal_killed_process", heal_killed_process, "SIGKILL one member's etcd"),
        ("heal_lost_data", heal_lost_data, "delete one member's pod and PVC"),
    ):
        runs: list[dict[str, Any]] = []
        hit: set[str] = set()
        for _ in range(args.repeats):
            log(f"heal {kept}: {what}")
            runs.append(await heal(bench, kept, hit))
            log(f"  healthy again in {runs[-1]['seconds']:.1f}s")
        results[key] = {"runs": runs, "median": statistics.median(r["seconds"] for r in runs)}

    log(f"upgrade: 3 members {FROM} -> {TO} under writes")
    results["upgrade"] = await upgrade_under_writes(bench, "upgrade")
    log(f"  rolled in {results['upgrade']['seconds']:.1f}s")
    await bench.delete_cluster("upgrade")

    log(f"backup and restore: {args.store_mb} MiB in {kept}")
    results["backup_restore"] = await backup_and_restore(bench, kept, args.store_mb, args.fill_concurrency)


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="skiff-etcd-operator-bench-"))
    kubeconfig = workdir / "kubeconfig"
    python = [sys.executable, "-m", "skiff.cli.main"]
    up = Process(
        "skiff up",
        [
            *python,
            *("up", "--data-dir", str(workdir / "data"), "--kubeconfig", str(kubeconfig)),
            *("--api-port", "0", "--node-name", "bench", "--no-etcd-operator"),
        ],
        workdir / "up.out",
    )
    backup_dir = workdir / "operator" / "backups"
    operator = Process(
        "etcd-operator",
        [
            *python,
            *("etcd-operator", "--kubeconfig", str(kubeconfig), "--leader-elect", "false"),
            *("--reconcile-interval", "1s", "--quorum-loss-grace", "5s"),
            *("--state-dir", str(workdir / "operator"), "--backup-dir", str(backup_dir)),
        ],
        workdir / "operator.out",
    )
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "store_mb": args.store_mb,
        "quick": args.quick,
    }
    code = 0
    try:
        async with asyncio.timeout(args.timeout):
            await up.start("skiff up: ready", timeout=180)
            await operator.start("etcd-operator: ready", timeout=120)
            log(f"skiff up and etcd-operator ready ({workdir})")
            config = await asyncio.to_thread(ClientConfig.from_kubeconfig, kubeconfig)
            async with ApiClient(config, user_agent="etcd-operator-bench") as api:
                await phases(Bench(api, backup_dir), args, results)
    except Exception as err:  # a failed run still reports what it measured, and the logs' tails
        code = 1
        results["error"] = f"{type(err).__name__}: {err}"
        log(f"FAILED: {results['error']}")
        for proc in (operator, up):
            if proc.output.exists():
                log(f"--- {proc.name} (tail) ---\n{proc.tail()}")
    finally:
        for proc in (operator, up):
            exit_code = await proc.stop()
            log(f"{proc.name} exited with {exit_code}")
        if args.keep or code:
            log(f"data dir kept: {workdir}")
        else:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
    report(results)
    await asyncio.to_thread(save, results, Path(args.out))
    return code


def save(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if results["quick"] else ""
    (out / f"etcd-operator{suffix}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def report(results: dict[str, Any]) -> None:
    print(f"etcd operator figures, {results['cores']} cores, {results['date']}")
    print("| figure | result |\n|---|---|")
    for figure, result in rows(results):
        print(f"| {figure} | {result} |")
    if "error" in results:
        print(f"\nrun failed: {results['error']}")


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if "create_s" in results:
        c = results["create_s"]
        runs = ", ".join(f"{s:.1f}" for s in c["runs"])
        out.append((f"time to a healthy 3-member cluster ({TO})", f"median **{c['median']:.1f} s** ({runs})"))
    for key, figure in (
        ("heal_killed_process", "heal: a member's etcd SIGKILLed → restarted in place"),
        ("heal_lost_data", "heal: a member's pod + PVC deleted → replaced (small store)"),
    ):
        if key in results:
            h = results[key]
            runs = ", ".join(f"{r['seconds']:.1f}" + (" leader" if r.get("leader") else "") for r in h["runs"])
            out.append((figure, f"median **{h['median']:.1f} s** ({runs})"))
    if "upgrade" in results:
        u = results["upgrade"]
        out.append((f"rolling upgrade {FROM} → {TO}, 3 members", f"**{u['seconds']:.1f} s**"))
        writes = f"{u['writes_acked']} acked, {u['failed_attempts']} failed attempts ({u['failed_share']:.2%})"
        out.append(("writes during the upgrade (a put every ~10 ms)", f"{writes}, **{u['lost']} lost**"))
        out.append(("members unavailable at once", f"at most **{u['max_unavailable']}** ({u['samples']} samples)"))
    if "backup_restore" in results:
        b = results["backup_restore"]
        f, backup, r = b["fill"], b["backup"], b["restore"]
        out.append((f"fill {b['store_mib']} MiB (1 MiB values)", f"{f['seconds']:.1f} s ({f['mib_per_s']:.0f} MiB/s)"))
        size = backup["size_bytes"] / MIB
        speed = f"({backup['mb_per_s']:.0f} MiB/s)"
        out.append((f"one-shot Local backup, {size:.0f} MiB", f"**{backup['seconds']:.1f} s** {speed}"))
        check = f"{r['keys']} keys back, sampled values {r['sampled_ok']}"
        speed = f"({r['mb_per_s']:.0f} MiB/s)"
        out.append(("EtcdRestore → Succeeded, 3 members", f"**{r['seconds']:.1f} s** {speed}; {check}"))
        h = b["heal_lost_data"]
        copied = f"{h['replacement_db_bytes'] / MIB:.0f} MiB"
        out.append(
            (f"heal: pod + PVC deleted with {b['store_mib']} MiB stored", f"**{h['seconds']:.1f} s** ({copied} copied)")
        )
    return out


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
