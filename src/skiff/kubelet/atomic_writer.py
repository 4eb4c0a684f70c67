"""Kubernetes' AtomicWriter: a volume's files change all at once or not at all.

Files live in a hidden timestamped directory; ``..data`` is a symlink to it and
each visible name is a symlink through ``..data``.  An update writes a new
hidden directory, then renames a fresh ``..data`` link over the old one (one
atomic rename), then removes the old directory — readers never see a mix.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

DATA_LINK = "..data"


def current_payload(target: Path) -> dict[str, tuple[bytes, int]] | None:
    link = target / DATA_LINK
    if not link.is_symlink():
        return None
    data_dir = target / os.readlink(link)
    payload: dict[str, tuple[bytes, int]] = {}
    for path in data_dir.rglob("*"):
        if path.is_file():
            payload[str(path.relative_to(data_dir))] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return payload


def write_atomically(target: Path, payload: dict[str, tuple[bytes, int]]) -> bool:
    """Make ``target`` hold exactly ``payload`` ({relative path: (content, mode)}); False when unchanged."""
    target.mkdir(parents=True, exist_ok=True)
    if current_payload(target) == payload:
        return False
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    new_dir = target / stamp
    new_dir.mkdir()
    for rel, (content, mode) in payload.items():
        path = new_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    old_link = target / DATA_LINK
    old_dir = os.readlink(old_link) if old_link.is_symlink() else None
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.rename(tmp_link, old_link)
    top_names = {rel.split("/", 1)[0] for rel in payload}
    for name in top_names:
        link = target / name
        if not link.is_symlink():
            os.symlink(f"{DATA_LINK}/{name}", link)
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in top_names:
            entry.unlink()
    if old_dir and old_dir != stamp:
        shutil.rmtree(target / old_dir, ignore_errors=True)
    return True
