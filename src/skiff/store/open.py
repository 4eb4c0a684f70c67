"""Open a Store from a URL: ``sqlite://PATH`` or ``etcd://HOST:PORT[,HOST:PORT...]``.

The one place that maps the ``--store`` flag of every command to a backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from skiff.store.protocol import Store

SCHEMES = ("sqlite://", "etcd://")


async def open_store(url: str) -> Store:
    if url.startswith("sqlite://"):
        from skiff.store.sqlite import SqliteStore

        path = await asyncio.to_thread(_prepare_path, url.removeprefix("sqlite://"))
        return await SqliteStore.open(path)
    if url.startswith("etcd://"):
        from skiff.store.etcd import EtcdStore

        endpoints = [e for e in url.removeprefix("etcd://").split(",") if e]
        if not endpoints:
            raise ValueError(f"no etcd endpoints in {url!r}")
        return await EtcdStore.connect(endpoints)
    raise ValueError(f"unknown store URL {url!r}: expected one of {', '.join(SCHEMES)}")


def _prepare_path(text: str) -> Path:
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
