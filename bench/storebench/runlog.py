"""Progress lines and failure recording shared by the benchmark scripts."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def recorded(data: dict[str, Any], path: str) -> AsyncIterator[None]:
    """Run one cell; a failure is recorded under ``errors[path]`` and the run goes on."""
    try:
        yield
    except Exception as err:  # a failed cell is a figure too: reported, not hidden
        data["errors"][path] = f"{type(err).__name__}: {err}"
        log(f"  {path} FAILED: {data['errors'][path]}")
        traceback.print_exc(file=sys.stderr)
