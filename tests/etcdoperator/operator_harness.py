"""A real ``skiff up`` cluster plus a real ``skiff etcd-operator`` process, for the operator's e2e tests.

``operator_env`` starts ``skiff up --no-etcd-operator`` (see ``cluster_harness.running_cluster``) and then
the operator as a separate process of its own (own session, its output kept in files under the test's
directory; the kubeconfig ``skiff up`` wrote for the operator's own identity), so that a test can take
the operator down while members die and bring it back.  Reconcile interval 1 s and quorum-loss grace
5 s keep the scenarios short.  At the end the operator gets SIGTERM
and must exit 0; then ``running_cluster`` asserts its own clean exit and that no pod process survives.

Members are checked the way etcd sees them, never by counting pods: ``MemberClient`` is a small
synchronous gRPC client (``skiff.etcd_protos``) that talks to the members' client URLs
(``http://<pod IP>:2379``) directly from the test process, retrying across members, independent of the
operator's own etcd client.  Every wait is bounded; a timeout reports the EtcdCluster's status, the
member pods and the tail of the operator's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import yaml
from cluster_harness import RunningCluster, running_cluster

from skiff.etcd_protos import load

T = TypeVar("T")

OPERATOR_READY_S = 60.0
OPERATOR_STOP_S = 30.0
RECONCILE_INTERVAL_S = 1.0
QUORUM_LOSS_GRACE_S = 5.0
READY_3_S = 120.0
RPC_TIMEOUT_S = 3.0
#: gRPC fails calls at once while a channel waits out its reconnect backoff (1 s, growing): a member that
#: restarted would look down for seconds after it is back.  Retry connecting quickly instead.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class OperatorProcess:
    """``skiff etcd-operator`` as a subprocess: start, wait for its ready line, SIGTERM and a clean exit."""

    def __init__(
        self, kubeconfig: Path, base: Path, backup_dir: Path, state_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.out = base / "etcd-operator.out"
        self.err = base / "etcd-operator.err"
        self.backup_dir = backup_dir
        self.state_dir = state_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "skiff.cli.main",
            "etcd-operator",
            "--kubeconfig",
            str(self.kubeconfig),
            "--leader-elect",
            "false",
            "--reconcile-interval",
            f"{RECONCILE_INTERVAL_S:g}s",
            "--quorum-loss-grace",
            f"{QUORUM_LOSS_GRACE_S:g}s",
            "--backup-dir",
            str(self.backup_dir),
            "--state-dir",
            str(self.state_dir),
            "--listen-address",
            "127.0.0.1",
            "--port",
            "0",
        ]

    def _output(self) -> str:
        return _read(self.out) + _read(self.err)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the operator is already running"
        readies = self._output().count("etcd-operator: ready")
        with self.out.open("ab") as stdout, self.err.open("ab") as stderr:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + OPERATOR_READY_S
        while self._output().count("etcd-operator: ready") <= readies:
            assert self.proc.poll() is None, f"etcd-operator exited with {self.proc.returncode}\n{self.logs()}"
            assert time.monotonic() < deadline, f"etcd-operator not ready in time\n{self.logs()}"
            time.sleep(0.2)
        served = re.findall(r"etcd-operator: serving on (https://\S+)", self._output())
        self.url = served[-1] if served else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM; SIGKILL to its process group if it does not exit in time.  Returns the exit code."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=OPERATOR_STOP_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        return code

    def logs(self, tail: int = 80) -> str:
        return f"--- etcd-operator ---\n{_tail(self.out, tail)}\n{_tail(self.err, tail)}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int) -> str:
    return "\n".join(_read(path).splitlines()[-lines:])


# --- etcd, seen from the test process -------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


class MemberClient:
    """Synchronous etcd v3 client over the members' client URLs (``IP:2379``), retrying across members.

    Reads are linearizable (etcd's default), so a value read back went through the raft log.
    """

    def __init__(self, endpoints: list[str]) -> None:
        assert endpoints, "no member endpoints to talk to"
        self.endpoints = list(endpoints)
        self._pb = load()
        self._channels: dict[str, grpc.Channel] = {}

    def __enter__(self) -> MemberClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _channel(self, endpoint: str) -> grpc.Channel:
        if endpoint not in self._channels:
            self._channels[endpoint] = grpc.insecure_channel(endpoint, options=FAST_RECONNECT)
        return self._channels[endpoint]

    def kv(self, endpoint: str) -> Any:
        return self._pb.rpc_pb2_grpc.KVStub(self._channel(endpoint))

    def cluster(self, endpoint: str) -> Any:
        return self._pb.rpc_pb2_grpc.ClusterStub(self._channel(endpoint))

    def maintenance(self, endpoint: str) -> Any:
        return self._pb.rpc_pb2_grpc.MaintenanceStub(self._channel(endpoint))

    def retrying(self, what: str, call: Callable[[str], T], timeout: float = 30.0) -> T:
        """``call(endpoint)`` on each member in turn until one answers, up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        while True:
            for endpoint in self.endpoints:
                try:
                    return call(endpoint)
                except grpc.RpcError as err:
                    errors.append(f"{endpoint}: {err.code()} {err.details()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: no member answered in {timeout:g}s: {errors[-6:]}")
            time.sleep(0.3)

    def put_once(self, endpoint: str, key: str, value: str) -> None:
        """One Put to one member, no retry (grpc.RpcError when it fails)."""
        request = self._pb.rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
        self.kv(endpoint).Put(request, timeout=RPC_TIMEOUT_S)

    def status_future(self, endpoint: str, timeout: float = RPC_TIMEOUT_S) -> Any:
        """Maintenance.Status of one member, started now; ``.result()`` raises grpc.RpcError on failure."""
        return self.maintenance(endpoint).Status.future(self._pb.rpc_pb2.StatusRequest(), timeout=timeout)

    def put(self, key: str, value: str, timeout: float = 30.0) -> int:
        """Write one key; the revision etcd acknowledged it at."""
        request = self._pb.rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
        reply = self.retrying(f"put {key}", lambda e: self.kv(e).Put(request, timeout=RPC_TIMEOUT_S), timeout)
        return int(reply.header.revision)

    def get_prefix(self, prefix: str, timeout: float = 30.0) -> dict[str, str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        request = self._pb.rpc_pb2.RangeRequest(key=prefix.encode(), range_end=end.encode())
        reply = self.retrying(f"range {prefix}", lambda e: self.kv(e).Range(request, timeout=RPC_TIMEOUT_S), timeout)
        return {kv.key.decode(): kv.value.decode() for kv in reply.kvs}

    def revision(self, timeout: float = 30.0) -> int:
        """The cluster's current revision (a linearizable read's header)."""
        request = self._pb.rpc_pb2.RangeRequest(key=b"\0")
        reply = self.retrying("revision", lambda e: self.kv(e).Range(request, timeout=RPC_TIMEOUT_S), timeout)
        return int(reply.header.revision)

    def member_list(self, timeout: float = 30.0) -> list[Member]:
        request = self._pb.rpc_pb2.MemberListRequest()
        reply = self.retrying(
            "member list", lambda e: self.cluster(e).MemberList(request, timeout=RPC_TIMEOUT_S), timeout
        )
        return [
            Member(int(m.ID), m.name, tuple(m.peerURLs), tuple(m.clientURLs), bool(m.isLearner)) for m in reply.members
        ]

    def status(self, endpoint: str, timeout: float = RPC_TIMEOUT_S) -> Any:
        """Maintenance.Status of one member (no retry): version, leader, raft index, isLearner."""
        return self.maintenance(endpoint).Status(self._pb.rpc_pb2.StatusRequest(), timeout=timeout)


def write_keys(client: MemberClient, prefix: str, count: int) -> dict[str, str]:
    """``count`` keys under ``prefix``; returns what was written (every write acknowledged)."""
    written = {f"{prefix}{i:04d}": f"value-{prefix}{i}" for i in range(count)}
    for key, value in written.items():
        client.put(key, value)
    return written


def assert_keys(client: MemberClient, prefix: str, expected: dict[str, str]) -> None:
    """Exactly ``expected`` under ``prefix``, values included."""
    found = client.get_prefix(prefix)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    assert not (missing or extra or wrong), f"under {prefix}: missing {missing[:5]} extra {extra[:5]} wrong {wrong[:5]}"


# --- the cluster and the operator together ---------------------------------------------------------------


@dataclass
class EtcdOperatorEnv:
    cluster: RunningCluster
    #: None when ``skiff up`` runs the operator itself (its log is then among the cluster's logs).
    operator: OperatorProcess | None
    base: Path
    backup_dir: Path
    state_dir: Path

    # kubectl

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        return self.cluster.ok(*args, stdin=stdin, timeout=timeout)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        return self.cluster.kubectl(*args, stdin=stdin, timeout=timeout)

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        code, out, err = self.kubectl("get", kind, name, "-o", "json")
        if code != 0:
            assert "NotFound" in err or "not found" in err, f"kubectl get {kind} {name}: {err}"
            return None
        obj: dict[str, Any] = json.loads(out)
        return obj

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.ok("get", kind, *selector, "-o", "json"))["items"]
        return items

    def patch_spec(self, kind: str, name: str, **spec: Any) -> None:
        self.ok("patch", kind, name, "--type", "merge", "-p", json.dumps({"spec": spec}))

    def etcd_cluster(self, name: str) -> dict[str, Any]:
        obj = self.get("etcdcluster", name)
        assert obj is not None, f"EtcdCluster {name} is gone"
        return obj

    # waiting

    def wait(self, what: str, check: Callable[[], T], timeout: float = 90.0, interval: float = 0.5) -> T:
        """Poll ``check()`` until truthy; at the deadline fail with the last value and the operator's log."""
        deadline = time.monotonic() + timeout
        last: T = check()
        while not last:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out ({timeout:g}s) waiting for {what}; last: {last!r}\n{self.report()}")
            time.sleep(interval)
            last = check()
        return last

    def report(self) -> str:
        """What a failing wait prints: EtcdClusters' status, member pods, the operator's log."""
        parts = []
        with contextlib.suppress(Exception):
            for obj in self.items("etcdclusters"):
                parts.append(f"EtcdCluster {obj['metadata']['name']} spec={obj['spec']} status={obj.get('status')}")
        with contextlib.suppress(Exception):
            parts.append(self.ok("get", "pods", "-l", "app=etcd", "-o", "wide"))
        parts.append(self.operator.logs() if self.operator else self.cluster.logs(tail=60))
        return "\n".join(parts)

    def member_pods(self, name: str) -> list[dict[str, Any]]:
        return self.items("pods", "-l", f"etcd_cluster={name}")

    def endpoints(self, name: str) -> list[str]:
        """``IP:2379`` of each member pod that has an IP (terminating pods excluded)."""
        return sorted(
            f"{p['status']['podIP']}:2379"
            for p in self.member_pods(name)
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
        )

    def client(self, name: str) -> MemberClient:
        return MemberClient(self.wait(f"{name} member pods with IPs", lambda: self.endpoints(name)))

    def voters(self, name: str) -> list[Member]:
        """etcd's own member list (from any reachable member), learners and unstarted members included."""
        with self.client(name) as client:
            return client.member_list()

    def is_ready(self, name: str, size: int) -> bool:
        obj = self.etcd_cluster(name)
        status = obj.get("status") or {}
        ready = (status.get("members") or {}).get("ready") or []
        if len(ready) != size or condition(obj, "Available").get("status") != "True":
            return False
        try:
            with MemberClient(self.endpoints(name)) as client:
                members = client.member_list(timeout=2)
        except AssertionError:
            return False
        return len(members) == size and all(m.name and m.client_urls and not m.is_learner for m in members)

    def wait_ready(self, name: str, size: int, timeout: float = READY_3_S) -> dict[str, Any]:
        """status.members.ready has ``size`` pods, Available is True and etcd lists ``size`` started voters."""
        self.wait(f"EtcdCluster {name} ready at size {size}", lambda: self.is_ready(name, size), timeout)
        return self.etcd_cluster(name)

    # members

    def kill_member_process(self, member: str) -> int:
        """SIGKILL the etcd process of ``member`` (found by its command line); returns its PID."""
        pid = self.wait(f"the etcd process of {member}", lambda: member_pid(member), timeout=30)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return pid

    def delete_members_with_data(self, *members: str, frozen_first: bool = False) -> None:
        """Delete the members' PVCs and pods in one go: their data is gone for good.

        NotFound is fine: the operator may already delete a pod whose claim it saw go. With ``frozen_first`` the
        members' etcd processes are SIGSTOPped before anything is deleted and SIGKILLed after: the loss is then
        simultaneous, as when machines die, and the operator cannot still reach them to remove them one by one
        while their pods terminate (which keeps quorum and takes the member-replacement path instead).
        """
        frozen: list[int] = []
        if frozen_first:
            frozen = [self.wait(f"the etcd process of {m}", lambda m=m: member_pid(m), timeout=30) for m in members]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
        self.ok(
            "delete",
            *(f"pvc/{m}" for m in members),
            *(f"pod/{m}" for m in members),
            "--wait=false",
            "--ignore-not-found",
        )
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def events_for(self, kind: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return self.items("events", "--field-selector", selector)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of type ``kind`` ({} when absent)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def member_pid(member: str) -> int | None:
    """PID of the etcd process started with ``--name=<member>``, scanning /proc (to signal it, nothing else)."""
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


def etcd_cluster_manifest(name: str, size: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdCluster",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


@contextlib.contextmanager
def operator_env(base: Path, environ: dict[str, str] | None = None) -> Iterator[EtcdOperatorEnv]:
    """``skiff up --no-etcd-operator`` plus ``skiff etcd-operator`` (``environ`` added to its environment).

    Both are stopped, and must exit cleanly, at the end.
    """
    base.mkdir(parents=True, exist_ok=True)
    backup_dir, state_dir = base / "backups", base / "operator-state"
    backup_dir.mkdir()
    state_dir.mkdir()
    with running_cluster(base / "cluster", "--no-etcd-operator") as running:
        # The operator's own identity (system:skiff-etcd-operator), as ``skiff up`` runs it: least privilege.
        kubeconfig = running.data_dir / "etcd-operator.kubeconfig"
        operator = OperatorProcess(kubeconfig, base, backup_dir, state_dir, environ)
        env = EtcdOperatorEnv(running, operator, base, backup_dir, state_dir)
        try:
            operator.start()
            yield env
        except BaseException:
            print(operator.logs(400), file=sys.stderr)
            raise
        finally:
            code = operator.stop()
            assert code == 0, f"etcd-operator exited with {code} after SIGTERM\n{operator.logs()}"


@pytest.fixture(scope="module")
def etcd_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdOperatorEnv]:
    with operator_env(tmp_path_factory.mktemp("etcdop")) as env:
        yield env
