"""Where EtcdBackup snapshots go: a local directory or S3, behind one four-method Protocol.

A storage addresses a backup by a *path string*: relative to the operator's
``--backup-dir`` for Local, ``"<bucket>/<key>"`` for S3 (coreos/etcd-operator's
``spec.s3.path``).  ``save`` returns that same string, ``list`` returns such
strings, and ``fetch``/``delete`` accept them, so a path recorded in
``status.backups`` can be handed back to the storage unchanged (the restore
controller does).  Every blocking call (file copies, boto3) runs in a thread.

Guarantees:

* ``save`` is atomic for Local (written next to the target, then renamed), so a
  crash never leaves a half snapshot under a backup's name; S3 PUTs are atomic.
* ``delete`` of a missing object succeeds (retention may race a person).
* ``fetch`` of a missing object raises :class:`BackupNotFound`.
* Local paths must be relative and may not climb out of the root (``..``).

Periodic backups are named ``<path>_v<revision>_<YYYY-MM-DD-HH:MM:SS>`` as the
original operator named them.  Retention (:func:`retained`) orders them by the
*parsed* revision, then time — the original sorted the names as strings, so
``_v100_`` sorted below ``_v99_`` and the newest backups were deleted once the
revision gained a digit (coreos/etcd-operator#2113).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import configparser
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from skiff.client.resources import SECRETS
from skiff.client.rest import ApiClient

#: Storage types the original accepted; only Local and S3 are implemented here.
UNSUPPORTED_TYPES = ("ABS", "GCS", "OSS")
DEFAULT_S3_REGION = "us-east-1"
_PERIODIC_SUFFIX = re.compile(r"_v(\d+)_(\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2})$")
_PERIODIC_TIME = "%Y-%m-%d-%H:%M:%S"
_PARTIAL = ".partial"


class StorageSpecError(ValueError):
    """A storage section that cannot work as written (a spec error: retrying will not help)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedStorage(StorageSpecError):
    """A storage type the API accepts but this operator does not implement (ABS, GCS, OSS)."""


class BackupNotFound(LookupError):
    """``fetch`` of a path that holds no backup."""


@dataclass(frozen=True)
class BackupRecord:
    """One stored snapshot as ``status.backups[]`` lists it.

    ``hash`` is the snapshot's hash as ``snapshot status`` reports it; the CRD
    types it as a string (crds.py), so ``to_status`` writes its decimal text
    and ``from_status`` reads either form.
    """

    path: str
    revision: int
    etcd_version: str
    size: int
    time: str  # RFC 3339, UTC, seconds: "2026-11-26T23:59:01Z"
    hash: int

    def to_status(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "revision": self.revision,
            "etcdVersion": self.etcd_version,
            "size": self.size,
            "time": self.time,
            "hash": str(self.hash),
        }

    @classmethod
    def from_status(cls, doc: dict[str, Any]) -> BackupRecord:
        return cls(
            path=str(doc.get("path") or ""),
            revision=int(doc.get("revision") or 0),
            etcd_version=str(doc.get("etcdVersion") or ""),
            size=int(doc.get("size") or 0),
            time=str(doc.get("time") or ""),
            hash=int(doc.get("hash") or 0),
        )


class BackupStorage(Protocol):
    async def save(self, source: Path, path: str) -> str:
        """Store the file ``source`` under ``path``; return the path to give ``fetch``/``delete``."""

    async def fetch(self, path: str, dest: Path) -> None:
        """Copy the backup at ``path`` to the local file ``dest``; BackupNotFound if absent."""

    async def list(self, prefix: str) -> list[str]:
        """Paths of the stored backups that start with ``prefix`` (any order)."""

    async def delete(self, path: str) -> None:
        """Remove the backup at ``path``; absent is fine."""


# -- Local ------------------------------------------------------------------------------------------


class LocalStorage:
    """Files under one root directory (the operator's ``--backup-dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, path: str) -> Path:
        """The file for a relative backup path; StorageSpecError for absolute or climbing paths."""
        rel = PurePosixPath(path)
        if not path or path.endswith("/"):
            raise StorageSpecError(f"local path {path!r} must name a file")
        if rel.is_absolute():
            raise StorageSpecError(f"local path {path!r} must be relative to the operator's backup directory")
        if ".." in rel.parts:
            raise StorageSpecError(f"local path {path!r} may not contain '..'")
        return self.root.joinpath(*rel.parts)

    async def save(self, source: Path, path: str) -> str:
        target = self.resolve(path)
        await asyncio.to_thread(_atomic_copy, source, target)
        return PurePosixPath(path).as_posix()

    async def fetch(self, path: str, dest: Path) -> None:
        target = self.resolve(path)
        try:
            await asyncio.to_thread(_atomic_copy, target, dest)
        except FileNotFoundError as err:
            raise BackupNotFound(f"no local backup at {path!r}") from err

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        rel = PurePosixPath(prefix) if prefix else PurePosixPath(".")
        directory = self.root.joinpath(*(rel.parts if prefix.endswith("/") else rel.parent.parts))
        if not directory.is_dir():
            return []
        found = []
        for file in directory.rglob("*"):
            name = file.relative_to(self.root).as_posix()
            if file.is_file() and name.startswith(prefix) and not _is_partial(file):
                found.append(name)
        return found

    async def delete(self, path: str) -> None:
        target = self.resolve(path)
        await asyncio.to_thread(target.unlink, missing_ok=True)


def _is_partial(file: Path) -> bool:
    return file.name.startswith(".") and file.name.endswith(_PARTIAL)


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy to a hidden sibling, fsync, rename: readers see the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=_PARTIAL)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# -- S3 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Credentials:
    """What an awsSecret holds: profile ``default`` of its ``credentials`` and ``config`` files."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    region: str = DEFAULT_S3_REGION

    @classmethod
    def from_files(cls, credentials: str, config: str | None = None) -> S3Credentials:
        creds = _ini_section(credentials, ("default",), "credentials")
        key_id, secret = creds.get("aws_access_key_id"), creds.get("aws_secret_access_key")
        if not key_id or not secret:
            raise StorageSpecError(
                "awsSecret 'credentials' needs aws_access_key_id and aws_secret_access_key in profile [default]"
            )
        region = DEFAULT_S3_REGION
        if config:
            region = _ini_section(config, ("default", "profile default"), "config").get("region") or region
        return cls(key_id, secret, creds.get("aws_session_token") or None, region)


def _ini_section(text: str, names: tuple[str, ...], what: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as err:
        raise StorageSpecError(f"awsSecret {what!r} is not an INI file: {err}") from err
    for name in names:
        if parser.has_section(name):
            return dict(parser.items(name))
    raise StorageSpecError(f"awsSecret {what!r} has no [{names[0]}] profile")


def split_s3_path(path: str) -> tuple[str, str]:
    """``"bucket/a/b"`` → ``("bucket", "a/b")``; the key may be empty only for a listing prefix."""
    bucket, _, key = path.partition("/")
    if not bucket:
        raise StorageSpecError(f"s3 path {path!r} must be '<bucket>/<key>'")
    return bucket, key


class S3Storage:
    """Objects in S3 or an S3-compatible service (boto3, run in threads)."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    @classmethod
    async def connect(
        cls, credentials: S3Credentials, *, endpoint: str | None = None, force_path_style: bool = False
    ) -> S3Storage:
        return cls(await asyncio.to_thread(_s3_client, credentials, endpoint, force_path_style))

    async def save(self, source: Path, path: str) -> str:
        bucket, key = split_s3_path(path)
        if not key:
            raise StorageSpecError(f"s3 path {path!r} has no key")
        await asyncio.to_thread(self._s3.upload_file, str(source), bucket, key)
        return f"{bucket}/{key}"

    async def fetch(self, path: str, dest: Path) -> None:
        bucket, key = split_s3_path(path)
        try:
            await asyncio.to_thread(self._s3.download_file, bucket, key, str(dest))
        except Exception as err:
            if _s3_code(err) in ("404", "NoSuchKey", "NoSuchBucket"):
                raise BackupNotFound(f"no S3 object at {path!r}") from err
            raise

    async def list(self, prefix: str) -> list[str]:
        bucket, key_prefix = split_s3_path(prefix)
        return await asyncio.to_thread(self._list, bucket, key_prefix)

    def _list(self, bucket: str, key_prefix: str) -> builtins.list[str]:
        names: builtins.list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
            names.extend(f"{bucket}/{obj['Key']}" for obj in page.get("Contents") or [])
        return names

    async def delete(self, path: str) -> None:
        bucket, key = split_s3_path(path)
        await asyncio.to_thread(self._s3.delete_object, Bucket=bucket, Key=key)


def _s3_client(credentials: S3Credentials, endpoint: str | None, force_path_style: bool) -> Any:
    import boto3  # type: ignore[import-untyped]  # imported lazily: a Local-only operator never pays for it
    from botocore.config import Config  # type: ignore[import-untyped]

    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=credentials.region,
    )
    config = Config(s3={"addressing_style": "path" if force_path_style else "auto"}, retries={"max_attempts": 3})
    return session.client("s3", endpoint_url=endpoint or None, config=config)


def _s3_code(err: Exception) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


# -- choosing a storage from a spec -----------------------------------------------------------------


async def storage_for(
    client: ApiClient, namespace: str, storage_type: str, spec_section: dict[str, Any], *, local_root: Path | None
) -> tuple[BackupStorage, str]:
    """The storage a spec section names (``spec.s3`` / ``spec.local``) and the backup path in it.

    ``storage_type`` defaults to Local.  S3 reads its awsSecret from
    ``namespace`` (an ApiError, e.g. 404, propagates: the secret may appear
    later).  ABS/GCS/OSS raise UnsupportedStorage; a malformed section raises
    StorageSpecError.
    """
    kind = (storage_type or "Local").strip()
    section = spec_section or {}
    path = str(section.get("path") or "")
    if kind.upper() in UNSUPPORTED_TYPES:
        raise UnsupportedStorage(f"storage type {kind} is not supported by this operator (use S3 or Local)")
    if kind.lower() == "local":
        if local_root is None:
            raise StorageSpecError("Local storage needs the operator to run with a backup directory")
        local = LocalStorage(local_root)
        local.resolve(path)  # validate now: a bad path is a spec error, not a failed upload
        return local, PurePosixPath(path).as_posix()
    if kind.upper() != "S3":
        raise UnsupportedStorage(f"unknown storage type {kind!r} (use S3 or Local)")
    if not split_s3_path(path)[1]:
        raise StorageSpecError(f"s3 path {path!r} must be '<bucket>/<key>'")
    secret_name = section.get("awsSecret")
    if not secret_name:
        raise StorageSpecError("spec.s3.awsSecret is required")
    secret = await client.get(SECRETS, str(secret_name), namespace)
    data = secret_text(secret)
    if "credentials" not in data:
        raise StorageSpecError(f"secret {secret_name} has no 'credentials' key")
    credentials = S3Credentials.from_files(data["credentials"], data.get("config"))
    s3 = await S3Storage.connect(
        credentials, endpoint=section.get("endpoint") or None, force_path_style=bool(section.get("forcePathStyle"))
    )
    return s3, path


def secret_text(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` (base64) and ``stringData`` decoded to text."""
    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


# -- periodic names and retention -------------------------------------------------------------------


def periodic_name(path: str, revision: int, when: datetime) -> str:
    """``<path>_v<revision>_<YYYY-MM-DD-HH:MM:SS>`` (UTC), the original operator's format."""
    return f"{path}_v{revision}_{when.astimezone(UTC):{_PERIODIC_TIME}}"


def is_periodic_of(name: str, path: str) -> bool:
    """Whether ``name`` is a periodic backup of exactly ``path`` (not of ``path-other``)."""
    return name.startswith(path) and _PERIODIC_SUFFIX.fullmatch(name[len(path) :]) is not None


def parse_periodic(name: str) -> tuple[int, datetime] | None:
    """(revision, time) of a periodic backup name, or None for any other name."""
    match = _PERIODIC_SUFFIX.search(name)
    if match is None:
        return None
    when = datetime.strptime(match.group(2), _PERIODIC_TIME).replace(tzinfo=UTC)
    return int(match.group(1)), when


def retained(names: list[str], max_backups: int) -> tuple[list[str], list[str]]:
    """(kept newest first, to delete) — ordered by parsed revision, then time, never by string.

    ``max_backups`` 0 keeps everything.  Names that are not periodic backup
    names are neither kept nor deleted: they are not this retention's to judge.
    """
    parsed = [(key, name) for name in set(names) if (key := parse_periodic(name)) is not None]
    ordered = [name for _, name in sorted(parsed, reverse=True)]
    if max_backups <= 0:
        return ordered, []
    return ordered[:max_backups], ordered[max_backups:]
