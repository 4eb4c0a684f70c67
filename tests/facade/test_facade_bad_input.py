"""Bad input on the facade: clear errors, and the store untouched afterwards.

Raw gRPC calls carry payloads that are not valid protobuf (bytes passed
straight through, no serializer), etcdctl sends oversized values and unknown
lease ids, and raw requests use what the Store itself refuses but etcd
accepts (negative revisions, inverted ranges).  Before and after, the whole
keyspace and the revision are read with etcdctl and must be identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from facade_harness import FacadeProcess, etcdctl

from conftest import etcd_binary
from skiff.etcd_binaries import EtcdBinary
from skiff.etcd_protos import load
from skiff.store.types import MAX_REQUEST_BYTES

pytestmark = pytest.mark.timeout(120)

GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # an unterminated varint tag
rpc: Any = load().rpc_pb2


@pytest.fixture
def etcdctl351() -> EtcdBinary:
    return etcd_binary("3.5.1")


@pytest_asyncio.fixture
async def facade(tmp_path: Path, etcdctl351: EtcdBinary) -> AsyncIterator[FacadeProcess]:
    served = await FacadeProcess.start(tmp_path / "facade", peer_url="http://localhost:2380", token="etcd-cluster")
    try:
        for key, value in [("a", "1"), ("b", "2"), ("c", "3")]:
            assert (await etcdctl(etcdctl351, served.endpoint, "put", key, value)).rc == 0
        yield served
    finally:
        assert await served.stop() == 0, served.log()


async def snapshot_of(binary: EtcdBinary, endpoint: str) -> str:
    """The whole keyspace with the header revision, as etcdctl prints it."""
    out = await etcdctl(binary, endpoint, "get", "", "--prefix", "-w", "json")
    assert out.rc == 0, out.text()
    return out.stdout


@pytest.mark.parametrize(
    "method",
    [
        "/etcdserverpb.KV/Range",
        "/etcdserverpb.KV/Put",
        "/etcdserverpb.KV/DeleteRange",
        "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Lease/LeaseGrant",
        "/etcdserverpb.Maintenance/Status",
    ],
)
async def test_garbage_unary_payload_is_refused(facade: FacadeProcess, etcdctl351: EtcdBinary, method: str) -> None:
    before = await snapshot_of(etcdctl351, facade.endpoint)
    async with grpc.aio.insecure_channel(facade.endpoint) as channel:
        call = channel.unary_unary(method)  # no serializers: raw bytes on the wire
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(GARBAGE, timeout=10)
        # etcd (grpc-go) answers the same way: INTERNAL, "grpc: error unmarshalling request: ..."
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert (err.value.details() or "").startswith("grpc: error unmarshalling request:")
        # The server is still serving.
        ok = await channel.unary_unary("/etcdserverpb.KV/Range")(
            rpc.RangeRequest(key=b"a").SerializeToString(), timeout=10
        )
        assert rpc.RangeResponse.FromString(ok).kvs[0].value == b"1"
    assert await snapshot_of(etcdctl351, facade.endpoint) == before


@pytest.mark.parametrize("method", ["/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive"])
async def test_garbage_in_a_stream_ends_only_that_stream(
    facade: FacadeProcess, etcdctl351: EtcdBinary, method: str
) -> None:
    before = await snapshot_of(etcdctl351, facade.endpoint)
    async with grpc.aio.insecure_channel(facade.endpoint) as channel:
        call = channel.stream_stream(method)(iter([GARBAGE]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert (err.value.details() or "").startswith("grpc: error unmarshalling request:")
    assert await snapshot_of(etcdctl351, facade.endpoint) == before


async def test_oversized_values_are_refused(facade: FacadeProcess, etcdctl351: EtcdBinary) -> None:
    before = await snapshot_of(etcdctl351, facade.endpoint)
    # Over etcd's 1.5 MiB request limit but within gRPC's: the store's own error, etcd's text.
    over_limit = "x" * (MAX_REQUEST_BYTES + 1)
    out = await etcdctl(etcdctl351, facade.endpoint, "put", "big", stdin=over_limit)
    assert out.rc != 0
    assert "Error: etcdserver: request is too large" in out.stderr, out.text()
    # Over the gRPC receive limit (1.5 MiB + 512 KiB, as etcd): refused by the transport.
    huge = "x" * (MAX_REQUEST_BYTES + 600 * 1024)
    out = await etcdctl(etcdctl351, facade.endpoint, "put", "big", stdin=huge)
    assert out.rc != 0
    assert "ResourceExhausted" in out.stderr or "larger than max" in out.stderr, out.text()
    assert await snapshot_of(etcdctl351, facade.endpoint) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lease", "revoke", "1234abcd"), "Error: failed to revoke lease (etcdserver: requested lease not found)"),
        (("lease", "keep-alive", "--once", "1234abcd"), "Error: etcdserver: requested lease not found"),
        (("put", "k", "v", "--lease=1234abcd"), "Error: etcdserver: requested lease not found"),
        (("lease", "timetolive", "1234abcd"), "lease 000000001234abcd already expired"),
    ],
)
async def test_unknown_lease_ids(
    facade: FacadeProcess, etcdctl351: EtcdBinary, args: tuple[str, ...], message: str
) -> None:
    before = await snapshot_of(etcdctl351, facade.endpoint)
    out = await etcdctl(etcdctl351, facade.endpoint, *args)
    assert message in out.stdout + out.stderr, out.text()
    assert await snapshot_of(etcdctl351, facade.endpoint) == before


async def test_requests_the_store_refuses_are_read_as_etcd_reads_them(
    facade: FacadeProcess, etcdctl351: EtcdBinary
) -> None:
    before = await snapshot_of(etcdctl351, facade.endpoint)
    async with grpc.aio.insecure_channel(facade.endpoint) as channel:
        range_ = channel.unary_unary("/etcdserverpb.KV/Range")
        delete = channel.unary_unary("/etcdserverpb.KV/DeleteRange")
        negative = rpc.RangeResponse.FromString(
            await range_(rpc.RangeRequest(key=b"a", revision=-5, limit=-1).SerializeToString(), timeout=10)
        )
        assert [kv.value for kv in negative.kvs] == [b"1"]
        assert negative.header.revision == 4
        inverted = rpc.RangeResponse.FromString(
            await range_(rpc.RangeRequest(key=b"c", range_end=b"a").SerializeToString(), timeout=10)
        )
        assert (list(inverted.kvs), inverted.count, inverted.header.revision) == ([], 0, 4)
        deleted = rpc.DeleteRangeResponse.FromString(
            await delete(rpc.DeleteRangeRequest(key=b"c", range_end=b"a").SerializeToString(), timeout=10)
        )
        assert (deleted.deleted, deleted.header.revision) == (0, 4)
        bad_sort = range_(rpc.RangeRequest(key=b"a", sort_order=7).SerializeToString(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await bad_sort
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "etcdserver: invalid sort option"
    assert await snapshot_of(etcdctl351, facade.endpoint) == before
