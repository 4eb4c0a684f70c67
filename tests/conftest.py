"""Backends for the cross-backend suites: one ``store`` fixture, the same assertions for each.

Parameters (test ids):

* ``sqlite`` — ``SqliteStore`` on a file in the test's tmp dir (fresh per test).
* ``etcd-3.5.1`` / ``etcd-3.4.23`` — ``EtcdStore`` on a real single-member etcd.
  ``store`` shares one member per version for the whole session (starting etcd
  costs about a second), so tests using it write under their own ``prefix`` and
  reason about revisions relative to a revision they read first.
  ``fresh_store`` starts a member of its own, for assertions on absolute
  revisions or on the whole keyspace.
* ``facade`` — a ``SqliteStore`` served by ``FacadeServer`` on 127.0.0.1:0 and
  reached through ``EtcdStore.connect``, over TLS with client certificates
  (as ``skiff up`` serves it): the facade and the etcd backend are proven
  together against the same assertions (fresh per test).

Real etcd members shared by the session run on an event loop of their own, in
a background thread: each test gets its own event loop (pytest-asyncio's
default), and a process started from one loop must be stopped from the same
loop.  Tests only ever talk to a shared member over its loopback port.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from skiff.store.protocol import Store

T = TypeVar("T")

ETCD_VERSIONS = ("3.5.1", "3.4.23")
BACKENDS = ("sqlite", *(f"etcd-{v}" for v in ETCD_VERSIONS), "facade")


class SharedEtcdMembers:
    """Lazily started real etcd members, one per version, stopped at session end.

    They live on a private event loop thread so that any test's loop can use
    them; ``endpoint`` is awaited from the caller's loop without blocking it.
    """

    def __init__(self, base_dir: Path, tls: Any = None) -> None:
        """``tls``: a :class:`skiff.store.tls.TlsFiles` to start the members with TLS and client-cert auth."""
        self._base_dir = base_dir
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="etcd-members", daemon=True)
        self._thread.start()
        self._members: dict[str, Any] = {}

    async def _on_own_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def endpoint(self, version: str) -> str:
        """The ``127.0.0.1:PORT`` of the session's member for ``version``."""
        return await self._on_own_loop(self._endpoint(version))

    async def _endpoint(self, version: str) -> str:
        if version not in self._members:
            from skiff.store.etcd_process import EtcdMember

            binary = etcd_binary(version)
            data_dir = self._base_dir / f"etcd-{version}"
            self._members[version] = await EtcdMember.start(binary, data_dir, tls=self._tls)
        return str(self._members[version].endpoint)

    def close(self) -> None:
        async def stop_all() -> None:
            for member in self._members.values():
                await member.stop()

        if self._members:
            asyncio.run_coroutine_threadsafe(stop_all(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def etcd_binary(version: str) -> Any:
    """The installed etcd of ``version``.

    A missing etcd fails the test rather than skipping it: the test command
    installs both versions, so a missing one is a broken install, not a pass.
    """
    from skiff.etcd_binaries import find_binaries

    binaries = find_binaries()
    if version not in binaries:
        pytest.fail(f"etcd {version} is not installed (found {sorted(binaries)}); run `make test`")
    return binaries[version]


@pytest.fixture(scope="session")
def shared_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEtcdMembers]:
    members = SharedEtcdMembers(tmp_path_factory.mktemp("shared-etcd"))
    try:
        yield members
    finally:
        members.close()


async def _open_backend(
    backend: str,
    stack: AsyncExitStack,
    tmp_path: Path,
    shared_endpoint: Callable[[str], Coroutine[Any, Any, str]] | None,
) -> Store:
    """Open ``backend``; everything opened is closed by ``stack``, in reverse order."""
    if backend == "sqlite":
        from skiff.store.sqlite import SqliteStore

        sqlite_store: Store = await SqliteStore.open(tmp_path / "store.db")
        stack.push_async_callback(sqlite_store.close)
        return sqlite_store
    if backend == "facade":
        from skiff.apiserver.pki import ensure_etcd_pki
        from skiff.store.etcd import EtcdStore
        from skiff.store.facade import FacadeServer
        from skiff.store.sqlite import SqliteStore
        from skiff.store.tls import TlsFiles

        pki = await asyncio.to_thread(ensure_etcd_pki, tmp_path)
        served = await SqliteStore.open(tmp_path / "facade.db")
        stack.push_async_callback(served.close)
        server = FacadeServer(served, tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key))
        port = await server.start("https://127.0.0.1:0")
        stack.push_async_callback(server.stop)
        facade_client: Store = await EtcdStore.connect(
            [f"127.0.0.1:{port}"], ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key
        )
        stack.push_async_callback(facade_client.close)
        return facade_client
    version = backend.removeprefix("etcd-")
    if shared_endpoint is not None:
        endpoint = await shared_endpoint(version)
    else:
        from skiff.store.etcd_process import EtcdMember

        member = await EtcdMember.start(etcd_binary(version), tmp_path / f"etcd-{version}")
        stack.push_async_callback(member.stop)
        endpoint = member.endpoint
    from skiff.store.etcd import EtcdStore

    etcd_client: Store = await EtcdStore.connect([endpoint])
    stack.push_async_callback(etcd_client.close)
    return etcd_client


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's id; tests that need a store take ``store`` or ``fresh_store``."""
    return str(request.param)


@pytest_asyncio.fixture
async def store(backend: str, tmp_path: Path, shared_etcd: SharedEtcdMembers) -> AsyncIterator[Store]:
    """A store that may hold other tests' keys (etcd): use ``prefix`` and relative revisions."""
    async with AsyncExitStack() as stack:
        yield await _open_backend(backend, stack, tmp_path, shared_etcd.endpoint)


@pytest_asyncio.fixture
async def fresh_store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store of its own: revision 1, no keys, no leases."""
    async with AsyncExitStack() as stack:
        yield await _open_backend(backend, stack, tmp_path, None)


@pytest.fixture
def prefix() -> bytes:
    """A key prefix no other test uses."""
    return f"/conformance/{uuid.uuid4().hex}/".encode()
