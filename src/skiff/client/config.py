"""Where the API server is and who we are to it: built by hand or read from a kubeconfig.

Kubeconfig reading follows kubectl's rules for the parts Skiff components use:
``$KUBECONFIG`` (first file) or ``~/.kube/config``, the current or a named
context, file paths relative to the kubeconfig's directory, ``*-data`` fields
inline (base64), bearer ``token``/``tokenFile`` and ``insecure-skip-tls-verify``.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """The kubeconfig is missing, unreadable or lacks what we need."""


@dataclass(frozen=True)
class ClientConfig:
    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure_skip_tls_verify: bool = False

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None) -> ClientConfig:
        """Blocking file reads: call before the loop runs, or through ``asyncio.to_thread``."""
        file = Path(path) if path else default_kubeconfig_path()
        try:
            doc = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read kubeconfig {file}: {err}") from err
        if not isinstance(doc, dict):
            raise ConfigError(f"{file}: not a kubeconfig")
        return _from_document(doc, file.parent, context)

    def ssl_context(self) -> ssl.SSLContext | None:
        """None for plain HTTP servers."""
        if not self.server.startswith("https://"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        elif self.cert_data and self.key_data:
            _load_chain_from_memory(ctx, self.cert_data, self.key_data)
        return ctx


def default_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def _named(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            return body if isinstance(body, dict) else {}
    raise ConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _from_document(doc: dict[str, Any], base: Path, context_name: str | None) -> ClientConfig:
    name = context_name or doc.get("current-context")
    if not name:
        raise ConfigError("kubeconfig has no current-context")
    context = _named(doc, "contexts", name)
    cluster = _named(doc, "clusters", str(context.get("cluster", "")))
    user = _named(doc, "users", str(context.get("user", ""))) if context.get("user") else {}

    def path(value: Any) -> str | None:
        return str(base / value) if value else None

    def data(value: Any) -> bytes | None:
        return base64.b64decode(value) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(path(user["tokenFile"]))).read_text().strip()
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"cluster of context {name!r} has no server")
    return ClientConfig(
        server=str(server).rstrip("/"),
        ca_file=path(cluster.get("certificate-authority")),
        ca_data=data(cluster.get("certificate-authority-data")),
        cert_file=path(user.get("client-certificate")),
        key_file=path(user.get("client-key")),
        cert_data=data(user.get("client-certificate-data")),
        key_data=data(user.get("client-key-data")),
        token=token,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
    )


def _load_chain_from_memory(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``ssl`` loads chains only from files: a private temp file, removed at once."""
    fd, name = tempfile.mkstemp(prefix="skiff-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cert.rstrip(b"\n") + b"\n" + key)
        ctx.load_cert_chain(name)
    finally:
        os.unlink(name)
