"""``skiff scheduler`` and ``skiff sim nodes`` as child processes of the benchmark.

Each runs in its own interpreter (its own core, as in a real deployment) with
a kubeconfig for the admin certificate of the API server under test.  Until
``skiff.cli.main`` lists the ``scheduler`` and ``sim`` subcommands, they are
started through a tiny runner that registers just that subcommand.  Every
process is stopped by its PID (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import Pki
from skiff.cli.main import SUBCOMMANDS
from storebench.targets import stop_process

START_TIMEOUT = 600.0
STOP_GRACE = 15.0
_RUNNER = (
    "import argparse, asyncio, importlib, logging, sys\n"
    "parser = argparse.ArgumentParser(prog='skiff')\n"
    "sub = parser.add_subparsers()\n"
    "importlib.import_module('skiff.cli.' + sys.argv[1]).register(sub)\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "logging.basicConfig(level='WARNING', stream=sys.stderr)\n"
    "import uvloop\n"
    "sys.exit(uvloop.run(args.func(args)))\n"
)


def write_kubeconfig(url: str, data_dir: Path, path: Path) -> Path:
    kubeconfig.write(path, kubeconfig.build(url, Pki(data_dir / "pki")), merge_existing=False)
    return path


def _command(subcommand: str, *args: str) -> list[str]:
    if subcommand in SUBCOMMANDS:
        return [sys.executable, "-m", "skiff.cli.main", "--log-level", "WARNING", subcommand, *args]
    return [sys.executable, "-c", _RUNNER, subcommand, *args]


@contextlib.asynccontextmanager
async def child(name: str, workdir: Path, ready: str, subcommand: str, *args: str) -> AsyncIterator[int]:
    """Start ``skiff SUBCOMMAND ARGS``; yield its PID once a stdout line matches ``ready``."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    out = await asyncio.to_thread(open, out_path, "wb")
    err = await asyncio.to_thread(open, err_path, "wb")
    with out, err:
        process = await asyncio.create_subprocess_exec(
            *_command(subcommand, *args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        pattern = re.compile(ready)
        while not pattern.search(await asyncio.to_thread(out_path.read_text)):
            if process.returncode is not None or time.monotonic() > deadline:
                tail = (await asyncio.to_thread(err_path.read_bytes))[-3000:].decode(errors="replace")
                raise RuntimeError(f"{name} did not start (exit {process.returncode}):\n{tail}")
            await asyncio.sleep(0.1)
        yield process.pid
    finally:
        await stop_process(process, STOP_GRACE)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
