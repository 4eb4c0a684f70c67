"""Fixtures for kubelet tests: one real apiserver per module, real kubelet processes per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "apiserver"))

from apiserver_harness import RunningApiServer, running_apiserver
from kubelet_harness import KubeletProcess


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


@pytest.fixture
def kubelet(apiserver: RunningApiServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KubeletProcess]:
    index = abs(hash(request.node.name)) % 200 + 20
    proc = KubeletProcess(apiserver, tmp_path / "kubelet", f"node-{index}", f"127.0.1.{index}", f"127.20.{index}.0/24")
    proc.start()
    try:
        yield proc
    finally:
        code = proc.stop()
        print(proc.logs())  # shown by pytest only when the test fails
        assert code == 0, proc.logs()
