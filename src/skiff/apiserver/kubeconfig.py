"""Kubeconfig files for a Skiff cluster: written fresh, or merged into an existing one like kind does.

The cluster entry embeds the CA (``certificate-authority-data``) and the user
entry embeds a client cert and key (the admin's unless others are given: a
component's own identity), so the file works from any
directory and survives moving the data dir.  Merging replaces the cluster,
user and context of the same name, keeps everything else and makes the Skiff
context current.  Files are written atomically with mode 0600 (they hold a key).

Blocking file I/O: call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from skiff.apiserver.pki import Pki

DEFAULT_NAME = "skiff"


def build(
    server: str, pki: Pki, name: str = DEFAULT_NAME, *, client_cert: Path | None = None, client_key: Path | None = None
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context, all called ``name``; the user is the admin by default."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": b64(client_cert or pki.admin_cert),
                    "client-key-data": b64(client_key or pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def merge(existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with ``new``'s named entries replacing same-named ones; ``new``'s context current."""
    merged = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in ("clusters", "users", "contexts"):
        incoming = {entry["name"]: entry for entry in new.get(section) or []}
        kept = [e for e in existing.get(section) or [] if e.get("name") not in incoming]
        merged[section] = kept + list(incoming.values())
    merged["current-context"] = new["current-context"]
    return merged


def write(path: Path, config: dict[str, Any], *, merge_existing: bool) -> None:
    if merge_existing and path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: not a kubeconfig (top level is not a mapping)")
        config = merge(loaded, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".skiff-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
    os.replace(tmp, path)


def default_path() -> Path:
    """``$KUBECONFIG``'s first entry, else ``~/.kube/config`` (where kubectl looks)."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"
