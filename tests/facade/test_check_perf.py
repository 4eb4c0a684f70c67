"""``etcdctl check perf --load=s`` passes against the facade (the small load: 60 s, 50 clients).

The large load is the benchmark's business (bench/), not a test's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from facade_harness import FacadeProcess, etcdctl

from conftest import etcd_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_check_perf_small_load_passes(tmp_path: Path) -> None:
    binary = etcd_binary("3.5.1")
    facade = await FacadeProcess.start(tmp_path / "facade", peer_url="http://localhost:2380", token="etcd-cluster")
    try:
        out = await etcdctl(binary, facade.endpoint, "check", "perf", "--load=s", deadline=180)
        # The data it wrote is gone again (check perf deletes its prefix).
        left = await etcdctl(
            binary,
            facade.endpoint,
            "get",
            "/etcdctl-check-perf/",
            "--prefix",
            "--count-only",
            "-w",
            "fields",
        )
    finally:
        assert await facade.stop() == 0, facade.log()
    assert out.rc == 0, out.text()
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == [], out.text()
    assert sum(line.startswith("PASS: ") for line in lines) == 3, out.text()
    assert lines[-1] == "PASS", out.text()
    assert '"Count" : 0' in left.stdout, left.text()
