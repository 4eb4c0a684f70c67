"""Files the API server re-reads while it serves: its serving certificate and the revoked client serials.

As k8s.io/apiserver's ``pkg/server/dynamiccertificates``: when the serving
certificate's files change, new TLS handshakes get the new pair, while
connections already open (a watch) keep the one they negotiated; nothing
restarts.  Upstream watches the files with fsnotify and re-reads them every
minute regardless; Skiff polls each file's (mtime, size, inode) off the event
loop — the serving pair every ``SERVING_RELOAD_S``, the revocation list every
``REVOKED_RELOAD_S``.

* ``ServingCertificate``: ``context`` is the listening ``SSLContext``.  Its SNI
  callback, which OpenSSL calls for every ClientHello (with or without a server
  name), moves the handshake onto the newest context, as upstream's
  ``GetConfigForClient`` does.  A new context is built in a worker thread and
  swapped in only once it loads: files written one after the other (key, then
  certificate) may be seen half-replaced, which fails to load and keeps the
  previous pair until the next change.  The live context is never modified, so
  a bad file cannot leave it with a certificate and no key.
* ``RevokedSerials``: the serials listed in ``DATA_DIR/pki/revoked-serials``
  (``apiserver.user_certs``), a callable the ``Authenticator`` asks; asking
  never touches the disk.  A missing file lists nothing.  An unreadable or
  malformed one keeps the previous set and logs an error (at start, ``load``
  raises: the server does not start with a list it cannot read).

``load`` methods block (call through ``asyncio.to_thread``); ``refresh`` does
its file work in a thread and returns whether something new was taken in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from skiff.apiserver.user_certs import parse_revoked_serials, parse_serial

log = logging.getLogger(__name__)

#: How often the serving certificate's files are checked.
SERVING_RELOAD_S = 10.0
#: How often the revocation list is checked (a revoked certificate works at most this much longer).
REVOKED_RELOAD_S = 1.0

#: Per file: (mtime_ns, size, inode), or None when it does not exist.
Stamp = tuple[tuple[int, int, int] | None, ...]


def file_stamp(paths: Sequence[Path]) -> Stamp:
    """What tells a rewritten file apart (``os.replace`` gives a new inode even within one mtime tick)."""
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class ServingCertificate:
    """The listening TLS context, handing each new handshake the newest pair read from ``files``."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: Sequence[Path]) -> None:
        #: Makes a complete server context from the files (blocking); raises OSError/ValueError when it cannot.
        self.build = build
        self.files = tuple(files)
        self.context: ssl.SSLContext | None = None
        self._current: ssl.SSLContext | None = None
        self._stamp: Stamp | None = None

    def load(self) -> ssl.SSLContext:
        """Build the listening context (blocking); raises when the files do not load."""
        stamp = file_stamp(self.files)
        context = self.build()
        context.sni_callback = self._select
        self.context = self._current = context
        self._stamp = stamp
        return context

    async def refresh(self) -> bool:
        """Swap in a context built from the files if they changed since the last look and load."""
        stamp = await asyncio.to_thread(file_stamp, self.files)
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a broken pair is reported once per change, not once per poll
        try:
            context = await asyncio.to_thread(self.build)
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            log.warning("serving certificate not reloaded, the previous one stays in use: %s", err)
            return False
        self._current = context
        log.info("serving certificate reloaded from %s", ", ".join(str(p) for p in self.files))
        return True

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        current = self._current
        if current is not None and connection.context is not current:
            connection.context = current


class RevokedSerials:
    """``revoked(serial_hex) -> bool`` over the serials listed in ``path``, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._serials: frozenset[int] = frozenset()
        self._stamp: Stamp | None = None

    def __call__(self, serial: str) -> bool:
        if not self._serials or not serial:
            return False
        try:
            return parse_serial(serial) in self._serials
        except ValueError:
            return False

    def load(self) -> None:
        """Read the list now (blocking); OSError or ValueError when it exists but cannot be read."""
        stamp = file_stamp([self.path])
        self._serials = self._read()
        self._stamp = stamp

    async def refresh(self) -> bool:
        stamp = await asyncio.to_thread(file_stamp, [self.path])
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self._serials = await asyncio.to_thread(self._read)
        except (OSError, ValueError) as err:
            log.error("%s not reloaded, the previous list stays in force: %s", self.path, err)
            return False
        log.info("revoked client certificate serials reloaded from %s (%d listed)", self.path, len(self._serials))
        return True

    def _read(self) -> frozenset[int]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return frozenset()
        try:
            return parse_revoked_serials(text)
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from None


async def refresh_periodically(refresh: Callable[[], Awaitable[bool]], interval_s: float) -> None:
    """Call ``refresh`` every ``interval_s`` until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await refresh()
