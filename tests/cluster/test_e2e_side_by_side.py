"""Two ``skiff up`` clusters on one machine at once: different data dirs, disjoint address plans, both working."""

from __future__ import annotations

import json
from pathlib import Path

from cluster_harness import running_cluster
from e2e_manifests import http_get, web_deployment


def test_two_clusters_run_side_by_side(tmp_path: Path) -> None:
    # Data dirs named so their slots differ (a slot collision is checked, not assumed).
    with (
        running_cluster(tmp_path / "new-york", node_name="ny-1") as ny,
        running_cluster(tmp_path / "san-francisco", node_name="sf-1") as sf,
    ):
        assert ny.addresses != sf.addresses
        for first, second in ((ny, sf), (sf, ny)):
            assert first.addresses.api_address != second.addresses.api_address
            assert first.addresses.service_cidr != second.addresses.service_cidr
        assert ny.ok("get", "nodes", "-o", "name").split() == ["node/ny-1"]
        assert sf.ok("get", "nodes", "-o", "name").split() == ["node/sf-1"]
        for c in (ny, sf):
            c.ok("apply", "-f", "-", stdin=json.dumps(web_deployment("hello", 1)))
            c.ok("expose", "deployment", "hello", "--port", "80", "--target-port", "8080")
        ips = {c.node_name: c.ok("get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}") for c in (ny, sf)}
        assert ips["ny-1"] != ips["sf-1"]
        for c in (ny, sf):
            ip = ips[c.node_name]
            c.wait_for(f"hello in {c.node_name}", lambda ip=ip: http_get(f"http://{ip}/version")[0] == 200)  # type: ignore[misc]
