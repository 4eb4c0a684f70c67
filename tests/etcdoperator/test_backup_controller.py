"""The EtcdBackup controller: its pure decisions, then one run against a real API server and a real etcd.

The integration test runs ``skiff apiserver`` (harness in tests/apiserver),
installs the operator's CRDs, starts one real etcd 3.5 member on loopback and
runs BackupController in the test's event loop.  The one-shot backup reaches
etcd through ``spec.etcdCluster.name``: a ``<name>-client`` Service and an
EndpointSlice made by the test point at the member, so Service resolution is
exercised as the operator (outside any pod) needs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from apiserver_harness import RunningApiServer, running_apiserver

from skiff.client import ApiClient, ApiError, ClientConfig
from skiff.client.clock import FakeClock
from skiff.client.controller import ControllerContext
from skiff.client.informer import InformerFactory
from skiff.client.resources import ENDPOINTSLICES, NAMESPACES, SERVICES
from skiff.etcd_binaries import find_binaries
from skiff.etcdoperator import backup_controller as bc
from skiff.etcdoperator.backup_storage import BackupRecord
from skiff.etcdoperator.crds import ensure_crds
from skiff.etcdoperator.endpoints import cluster_client_endpoint, resolve_endpoints, service_of
from skiff.etcdoperator.etcdclient import EtcdClient
from skiff.etcdoperator.resources import ETCDBACKUPS
from skiff.etcdoperator.snapshots import verify_snapshot
from skiff.store.etcd_process import EtcdMember

T = TypeVar("T")
Obj = dict[str, Any]
NOW = 1_800_000_000.0

# -- pure decisions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param({"etcdEndpoints": ["http://10.0.0.1:2379"]}, None, id="endpoints"),
        pytest.param({"etcdCluster": {"name": "demo"}}, None, id="cluster-name"),
        pytest.param({}, "spec.etcdEndpoints or spec.etcdCluster.name is required", id="no-source"),
        pytest.param({"etcdEndpoints": []}, "spec.etcdEndpoints or spec.etcdCluster.name is required", id="empty"),
        pytest.param({"etcdEndpoints": "http://x"}, "spec.etcdEndpoints must be a list of URLs", id="not-a-list"),
        pytest.param(
            {"etcdEndpoints": ["x"], "backupPolicy": {"backupIntervalInSecond": -1}},
            "spec.backupPolicy.backupIntervalInSecond must be >= 0",
            id="negative-interval",
        ),
        pytest.param(
            {"etcdEndpoints": ["x"], "backupPolicy": {"maxBackups": -2}},
            "spec.backupPolicy.maxBackups must be >= 0",
            id="negative-max",
        ),
        pytest.param(
            {"etcdEndpoints": ["x"], "backupPolicy": {"maxBackups": "2"}},
            "spec.backupPolicy.maxBackups must be an integer",
            id="string-max",
        ),
        pytest.param({"etcdEndpoints": ["x"], "clientTLSSecret": "tls"}, None, id="tls"),
    ],
)
def test_validate(spec: Obj, problem: str | None) -> None:
    assert bc.validate(spec) == problem


def test_policy_defaults_and_endpoints() -> None:
    assert bc.policy_of({}) == bc.BackupPolicy(timeout_s=60, interval_s=0, max_backups=0)
    policy = bc.policy_of({"backupPolicy": {"timeoutInSecond": 5, "backupIntervalInSecond": 30, "maxBackups": 3}})
    assert policy == bc.BackupPolicy(5, 30, 3) and policy.periodic
    assert bc.endpoints_of({"etcdCluster": {"name": "demo"}}) == ["http://demo-client:2379"]
    assert bc.endpoints_of({"etcdCluster": {"name": "demo"}}, secure=True) == ["https://demo-client:2379"]
    assert bc.endpoints_of({"etcdEndpoints": ["http://a:1"], "etcdCluster": {"name": "demo"}}) == ["http://a:1"]
    assert bc.storage_section({"local": {"path": "p"}}) == ("Local", {"path": "p"})
    assert bc.storage_section({"storageType": "S3", "s3": {"path": "b/k"}}) == ("S3", {"path": "b/k"})


@pytest.mark.parametrize(
    ("last_success", "last_attempt", "interval", "due_in"),
    [
        pytest.param(None, None, 60, 0.0, id="never-ran"),
        pytest.param("2027-01-15T08:00:00Z", None, 60, 60.0, id="just-succeeded"),
        pytest.param("2027-01-15T07:58:00Z", None, 60, 0.0, id="overdue"),
        pytest.param("2027-01-15T07:59:30Z", None, 60, 30.0, id="half-way"),
        pytest.param("2027-01-15T07:50:00Z", NOW - 10, 60, 50.0, id="failed-attempt-counts"),
        pytest.param("not-a-date", None, 60, 0.0, id="garbage-date"),
    ],
)
def test_seconds_until_due(last_success: str | None, last_attempt: float | None, interval: int, due_in: float) -> None:
    # NOW is 2027-01-15T08:00:00Z
    assert bc.seconds_until_due(last_success, last_attempt, interval, NOW) == pytest.approx(due_in)


@pytest.mark.parametrize(
    ("status", "generation", "settled"),
    [
        pytest.param({}, 1, False, id="new"),
        pytest.param({"succeeded": True, "observedGeneration": 1}, 1, True, id="succeeded"),
        pytest.param({"succeeded": False, "reason": "boom", "observedGeneration": 1}, 1, True, id="failed"),
        pytest.param({"succeeded": True, "observedGeneration": 1}, 2, False, id="spec-changed"),
    ],
)
def test_one_shot_settled(status: Obj, generation: int, settled: bool) -> None:
    assert bc.one_shot_settled({"metadata": {"generation": generation}, "status": status}) is settled


def test_backup_target_names() -> None:
    assert bc.backup_target("b/etcd.db", 100, NOW, periodic=False) == "b/etcd.db"
    assert bc.backup_target("b/etcd.db", 100, NOW, periodic=True) == "b/etcd.db_v100_2027-01-15-08:00:00"


def record(path: str, revision: int, time_: str = "2027-01-15T08:00:00Z") -> BackupRecord:
    return BackupRecord(path, revision, "3.5.1", 10, time_, 1)


def test_kept_records_follow_retention_and_drop_deleted() -> None:
    old = [record("p_v99", 99), record("p_v98", 98)]
    new = record("p_v100", 100)
    assert bc.kept_records(old, new, ["p_v100", "p_v99"]) == [new, old[0]]
    assert bc.kept_records(old, new, ["p_v100", "p_v99", "p_v1"]) == [new, old[0]]  # no record for p_v1
    assert bc.kept_records(old, new, None) == [new, *old]  # listing failed: known records, newest first


def test_failure_status_is_written_once() -> None:
    first = bc.failure_status({}, 3, "BackupFailed", "no etcd member reachable", NOW)
    assert first is not None
    assert first["succeeded"] is False and first["observedGeneration"] == 3
    cond = first["conditions"][0]
    assert cond["type"] == "Succeeded" and cond["status"] == "False" and cond["reason"] == "BackupFailed"
    assert bc.failure_status(first, 3, "BackupFailed", "no etcd member reachable", NOW + 5) is None
    assert bc.failure_status(first, 4, "BackupFailed", "no etcd member reachable", NOW + 5) is not None


def test_success_status_and_condition_transition() -> None:
    failed = bc.failure_status({}, 1, "BackupFailed", "x", NOW)
    assert failed is not None
    rec = record("p", 7, "2027-01-15T08:00:10Z")
    status = bc.success_status(failed, 1, rec, [rec], NOW + 10)
    assert status["succeeded"] is True and status["reason"] is None  # merge patch: null removes the reason
    assert (status["etcdRevision"], status["etcdVersion"], status["lastSuccessDate"]) == (7, "3.5.1", rec.time)
    assert status["backups"] == [rec.to_status()]
    assert status["conditions"][0]["lastTransitionTime"] == "2027-01-15T08:00:10Z"
    again = bc.success_status(status, 1, rec, [rec], NOW + 20)
    assert again["conditions"][0]["lastTransitionTime"] == "2027-01-15T08:00:10Z"


@pytest.mark.parametrize(
    ("host", "target"),
    [
        pytest.param("demo-client", ("demo-client", "ns"), id="bare"),
        pytest.param("demo-client.other", ("demo-client", "other"), id="svc.ns"),
        pytest.param("demo-client.other.svc", ("demo-client", "other"), id="svc.ns.svc"),
        pytest.param("demo-client.other.svc.cluster.local", ("demo-client", "other"), id="fqdn"),
        pytest.param("demo-client.other.svc.cluster.local.", ("demo-client", "other"), id="fqdn-dot"),
        pytest.param("10.0.0.7", None, id="ipv4"),
        pytest.param("[::1]", None, id="ipv6"),
        pytest.param("localhost", None, id="localhost"),
        pytest.param("etcd.example.com", None, id="external"),
        pytest.param("a.b.svc.other.domain", None, id="other-domain"),
    ],
)
def test_service_of(host: str, target: tuple[str, str] | None) -> None:
    assert service_of(host, "ns") == target


def test_cluster_client_endpoint() -> None:
    assert cluster_client_endpoint("demo") == "http://demo-client:2379"


# -- sync with fakes: scheduling and a failed verification ---------------------------------------------


class FakeInformer:
    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def add_handler(self, *handlers: Any) -> None:
        pass


class FakeInformers:
    def __init__(self) -> None:
        self.one = FakeInformer()

    def informer(self, resource: Any, *args: Any, **kwargs: Any) -> FakeInformer:
        return self.one


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    async def flush(self) -> None:
        pass


class FakeApi:
    """Records status and metadata patches; Services never exist, so endpoints pass through."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, Obj, str | None]] = []

    async def patch(self, res: Any, name: str, patch: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        self.patches.append((name, patch, kw.get("subresource")))
        return {}

    async def get(self, res: Any, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        raise ApiError(404, "NotFound", f"{name} not found")


def backup_obj(spec: Obj, status: Obj | None = None, finalizers: list[str] | None = None) -> Obj:
    meta: Obj = {"name": "b", "namespace": "ns", "uid": "u1", "generation": 1, "resourceVersion": "7"}
    if finalizers:
        meta["finalizers"] = finalizers
    return {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdBackup",
        "metadata": meta,
        "spec": spec,
        "status": status or {},
    }


@pytest.fixture
def fake_controller(tmp_path: Path) -> Iterator[tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock]]:
    api, recorder, clock = FakeApi(), FakeRecorder(), FakeClock(NOW)
    ctx = ControllerContext(
        api,  # type: ignore[arg-type]
        FakeInformers(),  # type: ignore[arg-type]
        clock=clock,
        options={"backup_dir": tmp_path / "backups", "staging_dir": tmp_path / "staging"},
        recorder_factory=lambda _component: recorder,  # type: ignore[arg-type,return-value]
    )
    controller = bc.BackupController(ctx)
    yield controller, api, recorder, clock
    controller.shutdown()


PERIODIC = {
    "etcdEndpoints": ["http://127.0.0.1:1"],
    "local": {"path": "p/etcd.db"},
    "backupPolicy": {"backupIntervalInSecond": 60, "maxBackups": 2},
}


async def test_periodic_not_due_is_requeued_not_run(
    fake_controller: tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, api, _, _ = fake_controller
    delays: list[float] = []
    monkeypatch.setattr(controller.queue, "add_after", lambda key, s: delays.append(s))
    status = {"lastSuccessDate": "2027-01-15T07:59:40Z", "observedGeneration": 1}
    controller.backups.items["ns/b"] = backup_obj(PERIODIC, status, [bc.FINALIZER])  # type: ignore[attr-defined]
    await controller.sync("ns/b")
    assert delays == [pytest.approx(40.0)] and api.patches == []


async def test_periodic_adds_the_finalizer_first(
    fake_controller: tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock],
) -> None:
    controller, api, _, _ = fake_controller
    controller.backups.items["ns/b"] = backup_obj(PERIODIC)  # type: ignore[attr-defined]
    await controller.sync("ns/b")
    assert api.patches == [("b", {"metadata": {"finalizers": [bc.FINALIZER], "resourceVersion": "7"}}, None)]


async def test_deletion_only_releases_the_finalizer(
    fake_controller: tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock],
) -> None:
    controller, api, _, _ = fake_controller
    obj = backup_obj(PERIODIC, None, ["other", bc.FINALIZER])
    obj["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    controller.backups.items["ns/b"] = obj  # type: ignore[attr-defined]
    await controller.sync("ns/b")
    assert api.patches == [("b", {"metadata": {"finalizers": ["other"], "resourceVersion": "7"}}, None)]


async def test_invalid_spec_fails_once_without_retry(
    fake_controller: tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock],
) -> None:
    controller, api, recorder, _ = fake_controller
    controller.backups.items["ns/b"] = backup_obj({"storageType": "ABS", "etcdEndpoints": ["http://127.0.0.1:1"]})  # type: ignore[attr-defined]
    await controller.sync("ns/b")
    [(_, patch, subresource)] = api.patches
    assert subresource == "status" and patch["status"]["succeeded"] is False
    assert patch["status"]["conditions"][0]["reason"] == "UnsupportedStorage"
    assert "ABS" in patch["status"]["reason"]
    assert [e[1] for e in recorder.events] == ["BackupFailed"]
    controller.backups.items["ns/b"]["status"] = patch["status"]  # type: ignore[attr-defined]
    await controller.sync("ns/b")  # settled for this generation: nothing more
    assert len(api.patches) == 1


async def test_failed_verification_is_a_failed_backup_and_the_file_is_deleted(
    fake_controller: tuple[bc.BackupController, FakeApi, FakeRecorder, FakeClock],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    controller, api, recorder, _ = fake_controller

    async def fake_pick(urls: list[str], tls: Any = None) -> Any:
        return type("Status", (), {"endpoint": urls[0], "version": "3.5.1", "revision": 9})()

    class GarbageSnapshot:
        def __init__(self, endpoint: str, **kwargs: Any) -> None:
            pass

        async def __aenter__(self) -> GarbageSnapshot:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            pass

        async def snapshot(self, dest: Path) -> int:
            await asyncio.to_thread(dest.write_bytes, b"not a bolt database")
            return 19

    monkeypatch.setattr(bc, "pick_member", fake_pick)
    monkeypatch.setattr(bc, "EtcdClient", GarbageSnapshot)
    controller.backups.items["ns/b"] = backup_obj(  # type: ignore[attr-defined]
        {"etcdEndpoints": ["http://127.0.0.1:1"], "local": {"path": "once/etcd.db"}}
    )
    await controller.sync("ns/b")
    [(_, patch, _)] = api.patches
    assert patch["status"]["succeeded"] is False and patch["status"]["conditions"][0]["reason"] == "BackupFailed"
    assert [e[1] for e in recorder.events] == ["BackupFailed"]
    assert list((tmp_path / "staging").iterdir()) == []
    assert not (tmp_path / "backups" / "once").exists()


# -- endpoint resolution with a fake API ---------------------------------------------------------------


class SliceApi:
    def __init__(self, services: set[str], slices: list[Obj]) -> None:
        self.services, self.slices = services, slices

    async def get(self, res: Any, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        if (namespace, name) not in self.services:
            raise ApiError(404, "NotFound", f"{name} not found")
        return {}

    async def list_all(self, res: Any, namespace: str | None = None, **kw: Any) -> Obj:
        svc = kw["label_selector"].split("=", 1)[1]
        return {"items": [s for s in self.slices if s["ns"] == namespace and s["svc"] == svc]}


def eslice(ns: str, svc: str, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    return {"ns": ns, "svc": svc, "ports": ports, "endpoints": endpoints}


async def test_resolve_endpoints() -> None:
    api: Any = SliceApi(
        {("ns", "demo-client"), ("other", "x-client")},
        [
            eslice(
                "ns",
                "demo-client",
                [{"name": "client", "port": 32379}],
                [
                    {"addresses": ["127.0.0.3"], "conditions": {"ready": True}},
                    {"addresses": ["127.0.0.2"]},  # ready unset means ready
                    {"addresses": ["127.0.0.9"], "conditions": {"ready": False}},
                ],
            ),
            eslice(
                "other",
                "x-client",
                [{"name": "peer", "port": 2380}, {"name": "c", "port": 2379}],
                [{"addresses": ["127.0.1.1"]}],
            ),
        ],
    )
    resolved = await resolve_endpoints(
        api,
        "ns",
        [
            "http://demo-client:2379",
            "x-client.other.svc.cluster.local:2379",
            "http://10.1.2.3:2379",
            "http://gone-client:2379",
            "http://demo-client.ns.svc:2379",
        ],
    )
    assert resolved == [
        "http://127.0.0.2:32379",
        "http://127.0.0.3:32379",
        "http://127.0.1.1:2379",
        "http://10.1.2.3:2379",
        "http://gone-client:2379",
    ]


# -- against a real API server and a real etcd ----------------------------------------------------------

DEADLINE_S = 20.0


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, deadline_s: float = DEADLINE_S) -> T:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("backup-apiserver")) as srv:
        yield srv


@pytest.fixture
async def member(tmp_path: Path) -> AsyncIterator[EtcdMember]:
    binaries = find_binaries()
    started = await EtcdMember.start(binaries["3.5.1"], tmp_path / "etcd")
    try:
        yield started
    finally:
        await started.stop()


async def backup_status(client: ApiClient, ns: str, name: str) -> Obj:
    return dict((await client.get(ETCDBACKUPS, name, ns)).get("status") or {})


async def point_service_at(client: ApiClient, ns: str, service: str, member: EtcdMember) -> None:
    """A Service and the EndpointSlice an endpointslice controller would make for one ready etcd pod."""
    await client.create(
        SERVICES, {"metadata": {"name": service}, "spec": {"ports": [{"name": "client", "port": 2379}]}}, ns
    )
    await client.create(
        ENDPOINTSLICES,
        {
            "metadata": {"name": f"{service}-abcde", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "client", "port": member.client_port, "protocol": "TCP"}],
        },
        ns,
    )


@pytest.mark.timeout(90)
async def test_one_shot_periodic_and_delete(server: RunningApiServer, member: EtcdMember, tmp_path: Path) -> None:
    client = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="backup-test")
    backup_dir = tmp_path / "backups"
    informers = InformerFactory(client)
    ctx = ControllerContext(client, informers, options={"backup_dir": backup_dir, "staging_dir": tmp_path / "staging"})
    controller: bc.BackupController | None = None
    run: asyncio.Task[None] | None = None
    etcd = EtcdClient(member.client_url, timeout=5)
    try:
        await ensure_crds(client)
        ns = "backups"
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await point_service_at(client, ns, "demo-client", member)
        for i in range(5):
            await etcd.put(f"/k/{i}", "v")

        controller = bc.BackupController(ctx)
        await informers.start()
        await informers.wait_synced()
        run = asyncio.create_task(controller.run(2))

        # One-shot, through the cluster's client Service.
        revision = (await etcd.status()).revision
        body = {
            "metadata": {"name": "once"},
            "spec": {"etcdCluster": {"name": "demo"}, "local": {"path": "once/etcd.db"}},
        }
        await client.create(ETCDBACKUPS, body, ns)
        status = await eventually(lambda: _settled(client, ns, "once"), "the one-shot backup to finish")
        assert status["succeeded"] is True, status
        assert status["etcdRevision"] == revision
        assert status["etcdVersion"] == "3.5.1"
        assert status["observedGeneration"] == 1
        assert [b["path"] for b in status["backups"]] == ["once/etcd.db"]
        info = await verify_snapshot(backup_dir / "once" / "etcd.db")
        assert info.revision == revision and status["backups"][0]["hash"] == str(info.hash)

        # Periodic every second, two kept; writes between runs move the revision on.
        body = {
            "metadata": {"name": "every"},
            "spec": {
                "etcdEndpoints": [member.client_url],
                "local": {"path": "every/etcd.db"},
                "backupPolicy": {"backupIntervalInSecond": 1, "maxBackups": 2},
            },
        }
        await client.create(ETCDBACKUPS, body, ns)
        seen: set[str] = set()

        async def three_runs() -> bool:
            await etcd.put("/k/tick", str(time.monotonic()))
            status = await backup_status(client, ns, "every")
            seen.update(b["path"] for b in status.get("backups") or [])
            return len(seen) >= 3

        await eventually(three_runs, "three periodic backups")
        # Stop the schedule (not the CR), then read a stable state.
        await client.patch(ETCDBACKUPS, "every", {"spec": {"backupPolicy": {"backupIntervalInSecond": 3600}}}, ns)
        obj = await eventually(lambda: _observed(client, ns, "every", 2), "generation 2 to be observed")
        assert obj["metadata"]["finalizers"] == [bc.FINALIZER]
        status = obj["status"]
        kept = [b["path"] for b in status["backups"]]
        assert len(kept) == 2
        revisions = [b["revision"] for b in status["backups"]]
        assert revisions == sorted(revisions, reverse=True) and revisions[0] > revisions[1]
        on_disk = sorted(p.relative_to(backup_dir).as_posix() for p in (backup_dir / "every").iterdir())
        assert on_disk == sorted(kept)
        assert status["lastSuccessDate"] == status["backups"][0]["time"]
        for path in kept:
            assert (await verify_snapshot(backup_dir / path)).revision == int(path.split("_v")[1].split("_")[0])

        # Deleting the CR releases the finalizer; the stored backups stay (#1838).
        await client.delete(ETCDBACKUPS, "every", ns)
        await eventually(lambda: _gone(client, ns, "every"), "the periodic EtcdBackup to be deleted")
        assert sorted(p.relative_to(backup_dir).as_posix() for p in (backup_dir / "every").iterdir()) == on_disk
    finally:
        if controller is not None:
            controller.shutdown()
        if run is not None:
            await asyncio.wait_for(run, 30)
        if controller is not None:
            await controller.recorder.flush()
        await informers.stop()
        await etcd.close()
        await client.close()
        await asyncio.sleep(0.25)  # let aborted TLS connections close inside this loop (aiohttp's advice)


async def _settled(client: ApiClient, ns: str, name: str) -> Obj | None:
    status = await backup_status(client, ns, name)
    return status if "succeeded" in status else None


async def _observed(client: ApiClient, ns: str, name: str, generation: int) -> Obj | None:
    obj = await client.get(ETCDBACKUPS, name, ns)
    return obj if (obj.get("status") or {}).get("observedGeneration") == generation else None


async def _gone(client: ApiClient, ns: str, name: str) -> bool:
    try:
        await client.get(ETCDBACKUPS, name, ns)
    except ApiError as err:
        return err.code == 404
    return False
