"""Property-based requests from our own OpenAPI v3 documents (schemathesis), against a real ``skiff apiserver``.

The documents of ``api/v1``, ``apis/apps/v1``, ``apis/batch/v1``,
``apis/rbac.authorization.k8s.io/v1``, ``apis/coordination.k8s.io/v1`` and
``apis/certificates.k8s.io/v1`` are loaded from the running server and handed
to schemathesis; for a subset of operations (create, get, list, patch, delete
of configmaps, secrets, services, pods, namespaces, deployments, jobs, roles,
rolebindings, leases and certificatesigningrequests — not clusterroles or
clusterrolebindings, whose deletion could lock the run out) Hypothesis draws a
bounded number of requests — positive (matching the schemas) and negative
(violating them) — sent over HTTPS with the admin client certificate.  Every
answer must be below 500 with no Python traceback in its body, and a rejected
create must leave the number of stored objects unchanged.  Namespaced
operations target one existing namespace so creates reach validation instead
of stopping at "namespace not found".  55 operations, 1,100 requests.

Deterministic (``derandomize``), no example database, no shrinking: the run
stays bounded; the failures found are all reported at the end.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

NS = "fuzz"
EXAMPLES_PER_OPERATION = 10
RESOURCES = (
    *("configmaps", "secrets", "services", "pods", "namespaces", "deployments"),
    *("jobs", "roles", "rolebindings", "leases", "certificatesigningrequests"),
)
CLUSTER_SCOPED = ("namespaces", "certificatesigningrequests")
#: create, list, get, patch, delete — not deletecollection (it would empty the namespace the run relies on).
OPERATIONS = {("POST", "collection"), ("GET", "collection"), ("GET", "item"), ("PATCH", "item"), ("DELETE", "item")}
TRACEBACK = b"Traceback (most recent call last)"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def session(apiserver: RunningApiServer) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # no REQUESTS_CA_BUNDLE (it would replace our CA), no proxies: loopback only
        http.verify = str(apiserver.pki.ca_cert)
        http.cert = (str(apiserver.pki.admin_cert), str(apiserver.pki.admin_key))
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        assert http.post(f"{apiserver.url}/api/v1/namespaces", json=namespace, timeout=30).status_code == 201
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing"}, "data": {"a": "1"}}
        assert http.post(f"{apiserver.url}/api/v1/namespaces/{NS}/configmaps", json=cm, timeout=30).status_code == 201
        yield http


def _selected(path: str, method: str) -> bool:
    parts = path.strip("/").split("/")
    item = parts[-1] == "{name}"
    plural = parts[-2] if item else parts[-1]  # subresources (.../{name}/status) end in neither
    if plural not in RESOURCES:
        return False
    if plural not in CLUSTER_SCOPED and "{namespace}" not in parts:
        return False  # the all-namespaces list of a namespaced resource: the namespaced one covers it
    return (method.upper(), "item" if item else "collection") in OPERATIONS


def _count(session: requests.Session, base: str, collection: str) -> int:
    response = session.get(base + collection, timeout=30)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def _exercise(operation: Any, mode: GenerationMode, session: requests.Session, base: str, found: Findings) -> None:
    path_parameters = {"namespace": NS} if "{namespace}" in operation.path else None
    query = {"watch": "false"} if operation.method.upper() == "GET" and not operation.path.endswith("}") else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters, query=query)
    collection = operation.path.replace("{namespace}", NS)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        creating = case.method.upper() == "POST"
        before = _count(session, base, collection) if creating else 0
        # schemathesis passes its own ``verify``: name our CA (and client certificate) per call.
        response = case.call(base_url=base, session=session, timeout=30, verify=session.verify, cert=session.cert)
        found.calls += 1
        found.statuses[response.status_code] = found.statuses.get(response.status_code, 0) + 1
        where = f"{mode.value} {case.method} {case.formatted_path}: {case.as_curl_command()}"
        if response.status_code >= 500:
            found.problems.append(f"{response.status_code} for {where}\n{response.text[:500]}")
        if TRACEBACK in response.content:
            found.problems.append(f"traceback in the body for {where}")
        if creating and response.status_code >= 400 and _count(session, base, collection) != before:
            found.problems.append(f"rejected create ({response.status_code}) changed the stored objects: {where}")

    run()


GROUP_VERSIONS = [
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/certificates.k8s.io/v1",
]


@pytest.mark.parametrize("group_version", GROUP_VERSIONS)
def test_generated_requests_get_no_server_errors(
    apiserver: RunningApiServer, session: requests.Session, group_version: str
) -> None:
    document = session.get(f"{apiserver.url}/openapi/v3/{group_version}", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if schemathesis cannot make sense of an operation of ours
        if _selected(operation.path, operation.method):
            operations.append(operation)
    assert operations
    found = Findings()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _exercise(operation, mode, session, apiserver.url, found)
    statuses = sorted(found.statuses.items())
    print(f"{group_version}: {len(operations)} operations, {found.calls} requests, statuses {statuses}")
    assert not found.problems, "\n\n".join(found.problems[:20]) + f"\n\n{len(found.problems)} problems"
