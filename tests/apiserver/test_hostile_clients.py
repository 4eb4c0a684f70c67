"""Hostile clients against a real ``skiff apiserver``: each bounded, each followed by a normal request.

* Bodies over 3 MiB — with a Content-Length, or chunked and never-ending — are
  413 (kube-apiserver's MaxRequestBodyBytes), and nothing is stored.
* A 1.4 MiB block-style YAML create (seconds of PyYAML) is decoded off the
  event loop: 50 reads in a row are all answered before it.
* 10,000 levels of JSON arrays and objects, YAML flow and block nesting, in
  creates, updates and every patch type: 400, not a RecursionError 500.
* 10,000 labels (63-character keys: accepted, as upstream has no count limit;
  64-character keys: 422), annotations past 256 KiB in total (422, upstream's
  TotalAnnotationSizeLimit), names of 254 characters and of 100 KiB (422), a
  100 KiB name in the URL (aiohttp refuses the request line, < 500).
* 200 slow-loris connections trickling their headers a byte per 0.1 s for
  3 s, and a chunked body that trickles and never ends: the server answers a
  normal request during and after.  Connections that stay idle, trickle their
  headers, or idle after a response are closed once the idle timeout passes
  (aiohttp's keep-alive timer, ``ApiServerConfig.idle_connection_timeout_s``;
  checked on an in-process server with a 1 s timeout, to a generous deadline).
* A watch whose client never reads while 12 MiB of events are written: the
  server stays responsive.  What bounds the server's memory is by design, not
  measured here: the stream's writes wait for the socket to drain (aiohttp
  keeps about 64 KiB per connection) and the watcher's queue closes the watch
  after 10,000 lines (``registry.cache_watcher``, as upstream terminates a
  blocked cacheWatcher).

Loops are bounded by counts, never by measured time; deadlines only bound
waiting for something that must happen.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, apiserver, in_process_apiserver  # noqa: F401

from skiff.apiserver.bodies import MAX_REQUEST_BODY_BYTES

NS = "hostile"
CM = f"/api/v1/namespaces/{NS}/configmaps"
TARGET = f"{CM}/target"
JSON = "application/json"
LEVELS = 10_000


def encoded(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def configmap(name: str = "target", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}, **extra}


@pytest.fixture(scope="module")
def stored(apiserver: RunningApiServer) -> bytes:
    """The namespace and the target ConfigMap; the target's stored bytes."""
    namespace = encoded({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    assert apiserver.request("POST", "/api/v1/namespaces", namespace, {"Content-Type": JSON})[0] == 201
    assert apiserver.request("POST", CM, encoded(configmap()), {"Content-Type": JSON})[0] == 201
    return read_target(apiserver)


def read_target(apiserver: RunningApiServer) -> bytes:
    status, _, body = apiserver.request("GET", TARGET)
    assert status == 200
    return body


def status_of(body: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(body)
    assert decoded["kind"] == "Status", decoded
    assert "Traceback" not in body.decode()
    return decoded


def assert_answers(apiserver: RunningApiServer) -> None:
    """A normal request gets its normal answer."""
    status, _, body = apiserver.request("GET", TARGET)
    assert status == 200, body
    assert json.loads(body)["metadata"]["name"] == "target"


# --- oversized bodies ------------------------------------------------------------------------

OVER_LIMIT = encoded(configmap(data={"a": "z" * (MAX_REQUEST_BODY_BYTES + 1)}))


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        pytest.param("POST", CM, JSON, id="create"),
        pytest.param("PUT", TARGET, JSON, id="update"),
        pytest.param("PATCH", TARGET, "application/merge-patch+json", id="merge-patch"),
        pytest.param("PATCH", f"{TARGET}?fieldManager=m", "application/apply-patch+yaml", id="apply"),
        pytest.param("POST", CM, "application/yaml", id="create-yaml"),
    ],
)
def test_body_over_3_mib_is_413(
    apiserver: RunningApiServer, stored: bytes, method: str, path: str, content_type: str
) -> None:
    got, _, answer = apiserver.request(method, path, OVER_LIMIT, {"Content-Type": content_type})
    assert got == 413, answer
    assert status_of(answer)["message"] == f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"
    assert read_target(apiserver) == stored
    assert_answers(apiserver)


def big_block_yaml(name: str) -> bytes:
    """A block-style YAML ConfigMap of 90,000 tiny keys (1.4 MiB, under the 1 MiB data limit): seconds of PyYAML."""
    entries = "".join(f"  k{index:06d}: v\n" for index in range(90_000))
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{entries}".encode()


async def test_a_large_yaml_body_does_not_hold_other_requests(apiserver: RunningApiServer, stored: bytes) -> None:
    """Decoding a 1.4 MiB YAML create (seconds of PyYAML) leaves the server answering others meanwhile.

    Counted, not timed: reads one after another for as long as the create is in flight (at most 500).  Were
    the YAML decoded on the event loop, every read sent after the body arrived would wait behind the decode,
    so only the one or two sent before it would be answered while the create is pending (1 with the old
    code); decoded on a thread, reads keep being answered throughout (40-50+ here, fewer on a busy machine).
    """
    body = big_block_yaml("big-yaml")
    create = asyncio.create_task(  # dry run: the object would be over the store's 1.5 MiB once managedFields is in
        asyncio.to_thread(apiserver.request, "POST", f"{CM}?dryRun=All", body, {"Content-Type": "application/yaml"})
    )
    reads_before_create = 0
    for _ in range(500):
        await asyncio.to_thread(assert_answers, apiserver)
        if create.done():
            break
        reads_before_create += 1
    code, _, answer = await create
    assert code == 201, answer[:300]
    assert len(json.loads(answer)["data"]) == 90_000
    assert reads_before_create >= 10
    assert read_target(apiserver) == stored


async def open_tls(apiserver: RunningApiServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(apiserver.host, apiserver.port, ssl=apiserver.ssl_context())


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_endless_chunked_body_is_413(apiserver: RunningApiServer, stored: bytes) -> None:
    """A chunked body with no end: 413 once past 3 MiB, whatever comes after (at most 8 MiB is sent)."""
    reader, writer = await open_tls(apiserver)
    try:
        head = f"PUT {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head.encode())
        answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
        piece = chunk(b"x" * 65536)
        for _ in range(8 * 1024 * 1024 // 65536):
            if answer.done():
                break
            writer.write(piece)
            try:
                await writer.drain()
            except ConnectionError:
                break  # the server stopped reading after answering
        status_line = (await asyncio.wait_for(answer, 30)).split(b"\r\n", 1)[0]
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 "), status_line
    assert read_target(apiserver) == stored
    assert_answers(apiserver)


async def test_trickling_chunked_body_does_not_block_others(apiserver: RunningApiServer, stored: bytes) -> None:
    """A chunked body that trickles a byte per 0.1 s and never ends holds only its own request."""
    _, writer = await open_tls(apiserver)
    try:
        head = f"PUT {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head.encode() + chunk(b"{"))
        for tick in range(20):
            writer.write(chunk(b" "))
            await writer.drain()
            if tick == 10:
                await asyncio.to_thread(assert_answers, apiserver)
            await asyncio.sleep(0.1)
    finally:
        writer.close()
    await asyncio.to_thread(assert_answers, apiserver)
    assert read_target(apiserver) == stored


# --- deep nesting ----------------------------------------------------------------------------


def json_arrays(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def json_objects(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def yaml_flow(levels: int) -> str:
    return "{a: " * levels + "1" + "}" * levels


def yaml_block(levels: int) -> str:
    return "- " * levels + "1"  # a block sequence per "- ", on one line


def deep_configmap_json(nest: Callable[[int], str]) -> bytes:
    return ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"},"x":' + nest(LEVELS) + "}").encode()


def deep_configmap_yaml(nest: Callable[[int], str]) -> bytes:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: target}}\nx: {nest(LEVELS)}\n".encode()


def deep_configmap_block_yaml() -> bytes:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: target}}\nx:\n  {yaml_block(LEVELS)}\n".encode()


DEEP = [
    pytest.param("POST", CM, JSON, deep_configmap_json(json_arrays), id="create-json-arrays"),
    pytest.param("POST", f"{CM}?fieldValidation=Strict", JSON, deep_configmap_json(json_objects),
                 id="create-json-objects-strict"),
    pytest.param("PUT", TARGET, JSON, deep_configmap_json(json_objects), id="update-json-objects"),
    pytest.param("POST", CM, "application/yaml", deep_configmap_yaml(yaml_flow), id="create-yaml-flow"),
    pytest.param("PUT", TARGET, "application/yaml", deep_configmap_block_yaml(), id="update-yaml-block"),
    pytest.param("PATCH", TARGET, "application/merge-patch+json", ('{"x":' + json_objects(LEVELS) + "}").encode(),
                 id="merge-patch"),
    pytest.param("PATCH", f"{TARGET}?fieldValidation=Strict", "application/strategic-merge-patch+json",
                 ('{"data":' + json_objects(LEVELS) + "}").encode(), id="strategic-merge-patch-strict"),
    pytest.param("PATCH", TARGET, "application/json-patch+json",
                 ('[{"op":"add","path":"/x","value":' + json_arrays(LEVELS) + "}]").encode(), id="json-patch"),
    pytest.param("PATCH", f"{TARGET}?fieldManager=m", "application/apply-patch+yaml", deep_configmap_yaml(yaml_flow),
                 id="apply-yaml"),
    pytest.param("PATCH", f"{TARGET}?fieldManager=m", "application/apply-patch+yaml",
                 deep_configmap_json(json_arrays), id="apply-json"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "content_type", "body"), DEEP)
def test_ten_thousand_levels_are_400(
    apiserver: RunningApiServer, stored: bytes, method: str, path: str, content_type: str, body: bytes
) -> None:
    got, _, answer = apiserver.request(method, path, body, {"Content-Type": content_type})
    assert got == 400, answer
    assert "depth" in status_of(answer)["message"]
    assert read_target(apiserver) == stored
    assert_answers(apiserver)


def test_deep_protobuf_unknown_field_is_skipped(apiserver: RunningApiServer, stored: bytes) -> None:
    """Protobuf nests only as deep as its schema: 10,000 levels in an unknown field are skipped bytes."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def ln(field: int, payload: bytes) -> bytes:
        return varint(field << 3 | 2) + varint(len(payload)) + payload

    deep = b""
    for _ in range(LEVELS):
        deep = ln(99, deep)
    raw = ln(1, ln(1, b"deep-protobuf")) + deep
    body = b"k8s\x00" + ln(1, ln(1, b"v1") + ln(2, b"ConfigMap")) + ln(2, raw)
    got, _, answer = apiserver.request("POST", CM, body, {"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert got == 201, answer
    assert json.loads(answer)["metadata"]["name"] == "deep-protobuf"
    assert_answers(apiserver)


# --- big metadata, long names ----------------------------------------------------------------


def test_ten_thousand_labels_with_63_character_keys_are_accepted(apiserver: RunningApiServer, stored: bytes) -> None:
    labels = {f"{i:05d}".ljust(63, "k"): "v" for i in range(10_000)}
    obj = configmap(name="many-labels")
    obj["metadata"]["labels"] = labels
    got, _, answer = apiserver.request("POST", CM, encoded(obj), {"Content-Type": JSON})
    assert got == 201, answer[:500]
    assert len(json.loads(answer)["metadata"]["labels"]) == 10_000
    listed = apiserver.request("GET", f"{CM}?labelSelector={next(iter(labels))}%3Dv")
    assert [item["metadata"]["name"] for item in json.loads(listed[2])["items"]] == ["many-labels"]
    assert_answers(apiserver)


def test_ten_thousand_labels_with_64_character_keys_are_422(apiserver: RunningApiServer, stored: bytes) -> None:
    obj = configmap(name="bad-labels")
    obj["metadata"]["labels"] = {f"{i:05d}".ljust(64, "k"): "v" for i in range(10_000)}
    got, _, answer = apiserver.request("POST", CM, encoded(obj), {"Content-Type": JSON})
    assert got == 422, answer[:500]
    causes = status_of(answer)["details"]["causes"]
    assert len(causes) == 10_000
    assert {cause["field"] for cause in causes} == {"metadata.labels"}
    assert apiserver.request("GET", f"{CM}/bad-labels")[0] == 404
    assert_answers(apiserver)


def annotated(name: str, total: int) -> dict[str, Any]:
    """A ConfigMap whose annotations (keys and values) add up to ``total`` bytes."""
    obj = configmap(name=name)
    key_size = 20
    count, rest = divmod(total, 1024)
    annotations = {f"a{i:0{key_size - 1}d}": "v" * (1024 - key_size) for i in range(count)}
    if rest:
        annotations["r".ljust(key_size, "r")] = "v" * (rest - key_size)
    assert sum(len(k) + len(v) for k, v in annotations.items()) == total
    obj["metadata"]["annotations"] = annotations
    return obj


def test_annotations_up_to_256_kib_are_accepted(apiserver: RunningApiServer, stored: bytes) -> None:
    got, _, answer = apiserver.request("POST", CM, encoded(annotated("annotations-at-limit", 256 * 1024)))
    assert got == 201, answer[:500]


def test_annotations_over_256_kib_are_422(apiserver: RunningApiServer, stored: bytes) -> None:
    got, _, answer = apiserver.request("POST", CM, encoded(annotated("annotations-over", 256 * 1024 + 100)))
    assert got == 422, answer[:500]
    (cause,) = status_of(answer)["details"]["causes"]
    assert (cause["field"], cause["reason"]) == ("metadata.annotations", "FieldValueTooLong")
    assert "262144 bytes" in cause["message"]
    assert apiserver.request("GET", f"{CM}/annotations-over")[0] == 404


@pytest.mark.parametrize("length", [254, 100 * 1024], ids=["254", "100KiB"])
def test_long_names_are_422(apiserver: RunningApiServer, stored: bytes, length: int) -> None:
    name = "n" * length
    got, _, answer = apiserver.request("POST", CM, encoded(configmap(name=name)), {"Content-Type": JSON})
    assert got == 422, answer[:500]
    assert status_of(answer)["details"]["causes"][0]["field"] == "metadata.name"
    assert_answers(apiserver)


def test_long_name_in_the_url_is_refused(apiserver: RunningApiServer, stored: bytes) -> None:
    """aiohttp refuses a request line over 8 KiB (a 400 of its own, not a Status); Go answers 414 or 431."""
    got, _, answer = apiserver.request("GET", f"{CM}/{'n' * 100 * 1024}")
    assert 400 <= got < 500, answer[:500]
    assert b"Traceback" not in answer
    assert_answers(apiserver)


# --- slow clients ----------------------------------------------------------------------------

SLOW_CONNECTIONS = 200
TICKS = 30  # one header byte per connection per tick
TICK_S = 0.1


async def test_slow_loris_connections_do_not_block_others(apiserver: RunningApiServer, stored: bytes) -> None:
    connections = await asyncio.gather(*(open_tls(apiserver) for _ in range(SLOW_CONNECTIONS)))
    head = f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nX-Slow: {'s' * TICKS}\r\n\r\n".encode()
    try:
        for tick in range(TICKS):
            for _, writer in connections:
                writer.write(head[tick : tick + 1])
            await asyncio.gather(*(writer.drain() for _, writer in connections))
            if tick in (1, TICKS // 2):
                await asyncio.to_thread(assert_answers, apiserver)
            await asyncio.sleep(TICK_S)
    finally:
        for _, writer in connections:
            writer.close()
    await asyncio.to_thread(assert_answers, apiserver)


async def closed_by_server(reader: asyncio.StreamReader, deadline: float) -> bool:
    """True once the server closes the connection (EOF or reset), False at the deadline."""
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            continue
        except (ConnectionError, ssl.SSLError):
            return True
        if not data:
            return True
    return False


async def test_idle_and_slow_header_connections_are_closed(tmp_path: Path) -> None:
    with in_process_apiserver(tmp_path, idle_connection_timeout_s=1.0) as server:
        context = server.ssl_context()
        idle = await asyncio.open_connection(server.host, server.port, ssl=context)
        slow = await asyncio.open_connection(server.host, server.port, ssl=context)
        after_response = await asyncio.open_connection(server.host, server.port, ssl=context)
        after_response[1].write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await after_response[0].readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 30
        trickle = asyncio.create_task(trickle_headers(slow[1], TICKS * 10))
        try:
            closed = await asyncio.gather(*(closed_by_server(r, deadline) for r, _ in (idle, slow, after_response)))
        finally:
            trickle.cancel()
            for _, writer in (idle, slow, after_response):
                writer.close()
        assert closed == [True, True, True]


async def trickle_headers(writer: asyncio.StreamWriter, ticks: int) -> None:
    """Header bytes one per tick, never the blank line that ends them."""
    writer.write(b"GET /readyz HTTP/1.1\r\nX-Slow: ")
    for _ in range(ticks):
        try:
            writer.write(b"s")
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(TICK_S)


# --- a watch that is never read --------------------------------------------------------------

EVENTS = 120
EVENT_SIZE = 100 * 1024


async def test_watch_client_that_never_reads(apiserver: RunningApiServer, stored: bytes) -> None:
    reader, writer = await open_tls(apiserver)
    try:
        writer.write(f"GET {CM}?watch=true HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        for i in range(EVENTS):
            obj = configmap(name=f"watched-{i}", data={"a": "w" * EVENT_SIZE})
            status, _, answer = await asyncio.to_thread(
                apiserver.request, "POST", CM, encoded(obj), {"Content-Type": JSON}
            )
            assert status == 201, answer[:300]
        await asyncio.to_thread(assert_answers, apiserver)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")  # the stream is still there
    finally:
        writer.close()
    await asyncio.to_thread(assert_answers, apiserver)
