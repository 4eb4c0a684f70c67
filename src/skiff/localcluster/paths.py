"""Where a local cluster keeps its state by default (one definition for ``skiff up`` and the tools beside it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/skiff``, as other local-cluster tools keep state per user."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"
