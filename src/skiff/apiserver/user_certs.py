"""Client certificates issued to people (``skiff user``): a registry, and the revocation list the API server reads.

Kubernetes authenticates a client certificate by its subject alone (CN = the
user, each O = a group) and cannot take one back before it expires; upstream's
advice is short lifetimes.  Skiff keeps that and adds a revocation list, an
extension of its own:

* ``issue_user`` signs ``CN=<name>, O=<group>...`` with the cluster CA
  (``pki.issue_client_cert``) and returns a kubeconfig embedding the
  certificate and its key.  The key is kept nowhere else: it is made in a
  private temporary directory that is removed.  The certificate (public) is
  kept as ``DATA_DIR/pki/users/<serial>.crt`` and a row is added to
  ``DATA_DIR/pki/users/issued.json``: serial, name, groups, not-after, revoked.
* ``revoke`` marks rows revoked and adds their serials to
  ``DATA_DIR/pki/revoked-serials`` (one hex serial a line, ``#`` comments),
  which a running API server re-reads when it changes
  (``apiserver.dynamic_certs``), refusing the client certificates it lists
  with 401.  Serials the registry does not know (a kubelet's, the admin's)
  can be revoked too.

Serials are compared as numbers and written as lowercase hex.  The registry
and the list are each replaced atomically, under an exclusive lock
(``users/.lock``), so concurrent commands lose no rows.  Existing lines of the
list (hand-written ones included) are kept.

Blocking (file I/O, key generation): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from skiff.api.certificates import write_atomic
from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import ADMIN_GROUP, Pki, issue_client_cert

REGISTRY_NAME = "issued.json"
REVOKED_SERIALS_NAME = "revoked-serials"
#: kubeadm's ``admin.kubeconfig`` that ``skiff up`` writes into the data dir: where the server URL comes from.
ADMIN_KUBECONFIG_NAME = "admin.kubeconfig"
DEFAULT_SERVER = "https://127.0.0.1:6443"
#: Members are cluster administrators whatever RBAC says (upstream's superuser group).
MASTERS_GROUP = ADMIN_GROUP


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """One row of the registry."""

    serial: str
    name: str
    groups: tuple[str, ...]
    #: RFC 3339, UTC.
    not_after: str
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "name": self.name,
            "groups": list(self.groups),
            "notAfter": self.not_after,
            "revoked": self.revoked,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> IssuedCert:
        return cls(
            serial=format_serial(parse_serial(str(row["serial"]))),
            name=str(row.get("name", "")),
            groups=tuple(str(g) for g in row.get("groups") or ()),
            not_after=str(row.get("notAfter", "")),
            revoked=bool(row.get("revoked", False)),
        )

    def status(self, now: datetime.datetime) -> str:
        """``revoked``, ``expired`` or ``valid`` at ``now`` (aware)."""
        if self.revoked:
            return "revoked"
        if self.not_after and datetime.datetime.fromisoformat(self.not_after) <= now:
            return "expired"
        return "valid"


def users_dir(pki: Pki) -> Path:
    return pki.directory / "users"


def registry_path(pki: Pki) -> Path:
    return users_dir(pki) / REGISTRY_NAME


def revoked_serials_path(pki: Pki) -> Path:
    return pki.directory / REVOKED_SERIALS_NAME


def parse_serial(text: str) -> int:
    """A certificate serial from hex (``0A1B``, ``0a:1b``, ``0x0a1b``); ValueError when it is not one."""
    cleaned = text.strip().replace(":", "").lower().removeprefix("0x")
    if not cleaned:
        raise ValueError(f"{text!r} is not a hex serial number")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise ValueError(f"{text!r} is not a hex serial number") from None


def format_serial(serial: int) -> str:
    return f"{serial:x}"


def parse_revoked_serials(text: str) -> frozenset[int]:
    """The serials of a revocation list: one hex serial a line, blank lines and ``#`` comments ignored.

    A malformed line is an error (ValueError naming it) rather than skipped: skipping would quietly
    accept a certificate someone meant to revoke.
    """
    serials: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            serials.add(parse_serial(entry))
        except ValueError as err:
            raise ValueError(f"line {number}: {err}") from None
    return frozenset(serials)


def load_registry(pki: Pki) -> list[IssuedCert]:
    """The registry's rows in issue order (none when nothing was issued yet)."""
    try:
        document = json.loads(registry_path(pki).read_text())
    except FileNotFoundError:
        return []
    return [IssuedCert.from_dict(row) for row in document.get("issued") or []]


def default_server(data_dir: Path) -> str:
    """The server of ``DATA_DIR/admin.kubeconfig`` (``skiff up`` writes it), else ``DEFAULT_SERVER``."""
    try:
        config = yaml.safe_load((data_dir / ADMIN_KUBECONFIG_NAME).read_text()) or {}
    except FileNotFoundError:
        return DEFAULT_SERVER
    for entry in config.get("clusters") or []:
        server = (entry.get("cluster") or {}).get("server")
        if server:
            return str(server)
    return DEFAULT_SERVER


def issue_user(
    pki: Pki, server: str, name: str, groups: Sequence[str], lifetime: datetime.timedelta
) -> tuple[IssuedCert, dict[str, Any]]:
    """Sign a client certificate for ``name`` in ``groups``, record it; (its row, a kubeconfig for it).

    The kubeconfig's cluster, user and context are all called ``<name>@skiff``, so it merges beside the
    admin's ``skiff`` context.  Refusing administrators is the caller's choice (``MASTERS_GROUP``).
    """
    if not name.strip():
        raise ValueError("a user name must not be empty")
    if any(not g.strip() for g in groups):
        raise ValueError("a group name must not be empty")
    directory = users_dir(pki)
    with _locked(directory):
        scratch = Path(tempfile.mkdtemp(prefix=".issue-", dir=directory))  # 0700: the key never leaves it
        try:
            cert_path, key_path = issue_client_cert(
                pki, scratch / "user", name, list(dict.fromkeys(groups)), lifetime=lifetime
            )
            config = kubeconfig.build(server, pki, f"{name}@skiff", client_cert=cert_path, client_key=key_path)
            cert_pem = cert_path.read_bytes()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        cert = x509.load_pem_x509_certificate(cert_pem)
        record = IssuedCert(
            serial=format_serial(cert.serial_number),
            name=name,
            groups=tuple(dict.fromkeys(groups)),
            not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        write_atomic(directory / f"{record.serial}.crt", cert_pem, 0o644)
        _write_registry(pki, [*load_registry(pki), record])
    return record, config


def revoke(pki: Pki, *, name: str | None = None, serial: str | None = None) -> list[IssuedCert]:
    """Revoke every unrevoked certificate of ``name``, or the one with ``serial``; the rows revoked.

    LookupError when ``name`` has no unrevoked certificate.  A serial the registry does not know is
    still listed (the answer then has one row without a name).  Revoking twice is harmless.
    """
    if (name is None) == (serial is None):
        raise ValueError("revoke by name or by serial, not both")
    directory = users_dir(pki)
    with _locked(directory):
        rows = load_registry(pki)
        if serial is not None:
            wanted = format_serial(parse_serial(serial))
            hits = [i for i, row in enumerate(rows) if row.serial == wanted]
            done = [replace(rows[i], revoked=True) for i in hits] or [IssuedCert(wanted, "", (), "", True)]
        else:
            hits = [i for i, row in enumerate(rows) if row.name == name and not row.revoked]
            if not hits:
                raise LookupError(f"no unrevoked certificate was issued to {name!r}")
            done = [replace(rows[i], revoked=True) for i in hits]
        for i, row in zip(hits, done, strict=False):
            rows[i] = row
        _add_revoked_serials(pki, [parse_serial(row.serial) for row in done])
        if hits:
            _write_registry(pki, rows)
    return done


def _add_revoked_serials(pki: Pki, serials: Sequence[int]) -> None:
    """Append to the list the serials it lacks (first the list, then the registry: a crash between the two
    leaves a certificate revoked but shown valid, never the reverse)."""
    path = revoked_serials_path(pki)
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = "# Client certificate serials the API server refuses (skiff user revoke), one hex serial a line.\n"
    listed = parse_revoked_serials(text)
    missing = [format_serial(s) for s in dict.fromkeys(serials) if s not in listed]
    if missing:
        body = text if text.endswith("\n") or not text else text + "\n"
        write_atomic(path, (body + "".join(f"{s}\n" for s in missing)).encode(), 0o644)


def _write_registry(pki: Pki, rows: Sequence[IssuedCert]) -> None:
    document = {"issued": [row.to_dict() for row in rows]}
    write_atomic(registry_path(pki), (json.dumps(document, indent=2) + "\n").encode(), 0o644)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
