"""``/version``, ``/healthz``, ``/livez``, ``/readyz``: anonymous, plain, cheap.

``/version`` reports Kubernetes 1.32: gcloud's kubectl dispatcher runs
``kubectl.1.<minor>`` from it, and clients gate features on it.

Health endpoints follow kube-apiserver's healthz package: ``ok`` when every
check passes, else 500 with the failing checks; ``?verbose`` lists each
check as ``[+]name ok`` / ``[-]name failed: reason``; ``/readyz/<check>``
runs one check; ``?exclude=<check>`` skips one.  Checks are async callables
returning an error text or None.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

#: The Kubernetes version Skiff serves the API of.
KUBE_MAJOR, KUBE_MINOR, KUBE_PATCH = "1", "32", "0"
GIT_VERSION = f"v{KUBE_MAJOR}.{KUBE_MINOR}.{KUBE_PATCH}-skiff"
BUILD_DATE = "1970-01-01T00:00:00Z"

Check = Callable[[], Awaitable[str | None]]


def version_info() -> dict[str, Any]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "compiler": sys.implementation.name,
        "platform": f"{sys.platform}/{arch}",
    }


async def run_checks(
    endpoint: str, checks: Mapping[str, Check], only: str, verbose: bool, exclude: list[str]
) -> tuple[int, str]:
    """(HTTP status, text body) of a health endpoint (``only``: a single named check, or "")."""
    if only:
        check = checks.get(only)
        if check is None:
            return 404, "404 page not found\n"
        error = await check()
        return (200, "ok") if error is None else (500, f"internal server error: {error}\n")
    lines: list[str] = []
    failed = False
    for name, check in checks.items():
        if name in exclude:
            lines.append(f"[+]{name} excluded: ok")
            continue
        error = await check()
        if error is None:
            lines.append(f"[+]{name} ok")
        else:
            failed = True
            lines.append(f"[-]{name} failed: reason withheld" if not verbose else f"[-]{name} failed: {error}")
    if failed:
        return 500, "\n".join(lines) + f"\n{endpoint} check failed\n"
    if verbose:
        return 200, "\n".join(lines) + f"\n{endpoint} check passed\n"
    return 200, "ok"
