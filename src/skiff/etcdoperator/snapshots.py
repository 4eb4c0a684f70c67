"""Verify an etcd snapshot file with etcd's own tool before trusting it as a backup or restore source.

Two checks, so that a bad download fails here instead of in a restore init container:

1. Integrity, as ``snapshot restore`` checks it: a snapshot streamed by
   etcd's Maintenance.Snapshot (and saved by ``etcdctl snapshot save`` or
   :meth:`EtcdClient.snapshot`) is the bolt file followed by the sha256 of it;
   etcd recognises the trailer by ``size % 512 == 32``.  Restore without
   ``--skip-hash-check`` refuses a file without it, and so do we.  This
   matters: ``snapshot status`` alone reads only the pages it needs and
   happily reports a snapshot cut in half (seen with 3.4 and 3.5).
2. Content, with etcd's own tool: ``snapshot status`` opens the bolt file and
   reports its revision and key count.

Tool choice (etcd moved offline commands from etcdctl to etcdutl in 3.5):
``etcdutl snapshot status -w json`` when any installed build ships etcdutl,
else ``ETCDCTL_API=3 etcdctl snapshot status -w json``.  Both are read-only
on the file.  The tool runs as a subprocess with a deadline; a failure raises
:class:`SnapshotError` with the tool's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from skiff.etcd_binaries import EtcdBinary, find_binaries

#: How long the status tool may run (it scans every key of the snapshot).
VERIFY_TIMEOUT = 120.0
_SHA_SIZE = hashlib.sha256().digest_size
_READ_CHUNK = 1024 * 1024


class SnapshotError(Exception):
    """The snapshot could not be verified (corrupt, truncated, missing, or no tool to read it)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``snapshot status`` reports: bolt-level hash, store revision, key count and file size in bytes."""

    hash: int
    revision: int
    total_keys: int
    total_size: int


# find_binaries execs every etcd it finds: do it once per process, in a thread.
_installed_binaries = functools.cache(find_binaries)


def _status_command(binaries: dict[str, EtcdBinary], path: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    newest_first = sorted(binaries.values(), key=lambda b: _version_key(b.version), reverse=True)
    for binary in newest_first:
        if binary.etcdutl is not None:
            return [str(binary.etcdutl), "snapshot", "status", "-w", "json", str(path)], env
    if not newest_first:
        raise SnapshotError("no etcd installation found to verify snapshots with")
    env["ETCDCTL_API"] = "3"
    return [str(newest_first[0].etcdctl), "snapshot", "status", "-w", "json", str(path)], env


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _parse(path: Path, stdout: bytes) -> SnapshotInfo:
    try:
        data = json.loads(stdout)
        return SnapshotInfo(
            hash=int(data["hash"]),
            revision=int(data["revision"]),
            total_keys=int(data["totalKey"]),
            total_size=int(data["totalSize"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise SnapshotError(f"snapshot {path}: unexpected status output {stdout[:200]!r}: {err}") from None


def _check_integrity(path: Path) -> int:
    """Verify etcd's sha256 trailer (etcd's snapshot restore does the same); returns the bolt file's size."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size % 512 != _SHA_SIZE:
                raise SnapshotError(
                    f"snapshot {path}: {size} bytes, no sha256 trailer (truncated, or not from etcd's Snapshot API)"
                )
            digest = hashlib.sha256()
            remaining = size - _SHA_SIZE
            while remaining > 0:
                chunk = file.read(min(_READ_CHUNK, remaining))
                if not chunk:
                    raise SnapshotError(f"snapshot {path}: changed while being verified")
                digest.update(chunk)
                remaining -= len(chunk)
            if file.read(_SHA_SIZE) != digest.digest():
                raise SnapshotError(f"snapshot {path}: sha256 mismatch (corrupt or truncated)")
    except OSError as err:
        raise SnapshotError(f"snapshot {path}: {err}") from None
    return size - _SHA_SIZE


async def verify_snapshot(path: Path, *, binary: EtcdBinary | None = None) -> SnapshotInfo:
    """Check ``path``'s sha256 trailer, then run ``snapshot status`` on it; raise :class:`SnapshotError` if bad.

    ``binary`` picks the build whose tool to run (default: any installed etcdutl, else etcdctl).
    """
    path = Path(path)
    db_size = await asyncio.to_thread(_check_integrity, path)
    binaries = {binary.version: binary} if binary else await asyncio.to_thread(_installed_binaries)
    argv, env = _status_command(binaries, path)
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(VERIFY_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        raise SnapshotError(f"snapshot {path}: {argv[0]} did not finish in {VERIFY_TIMEOUT:.0f}s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip() or stdout.decode(errors="replace").strip()
        raise SnapshotError(
            f"snapshot {path} is not readable ({Path(argv[0]).name} exit {process.returncode}): {detail}"
        )
    info = _parse(path, stdout)
    if info.total_size > db_size:
        raise SnapshotError(f"snapshot {path}: bolt size {info.total_size} exceeds the file's {db_size} bytes")
    return info
