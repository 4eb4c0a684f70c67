"""Hostile bodies for create, update and patch, over HTTPS against a real ``skiff apiserver``.

The strategies of ``body_fuzz.py`` (mutated samples as JSON, YAML and
protobuf; JSON patch, merge, strategic-merge and apply patches) are sent to
one object per kind — ConfigMap, Secret, Pod, Service, Deployment, Job, Role,
Lease, and a custom resource with a typed schema — with a random
``fieldValidation`` and, now and then, a Content-Type nobody serves.  Every
answer must be below 500 with no Python traceback, an error must be a
``Status``, and a rejected request must change nothing: the collection's list
resourceVersion (a consistent read, so any write anywhere moves it) and the
target object's bytes are compared before and after.  The server's log must
hold no unexpected exception at the end, and it must still be ready.
Services are the one exception to the list resourceVersion: their cluster IPs
and node ports are store writes taken before the write and given back after a
failed one, as upstream's service REST does.

Strategic-merge errors upstream passes on as a reason-less 500 are 400 here,
so no 5xx is expected at all.

Each (method, content type) pair gets ``EXAMPLES`` cases of its own.
Deterministic (``derandomize``), no example database, no shrinking; every
problem found is reported at the end of its pair.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401
from body_fuzz import PATCH_TYPES, SAMPLES, json_bodies, one_in, patch_bodies, protobuf_bodies, yaml_bodies
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from skiff.apiserver.negotiation import JSON, PROTOBUF, YAML

NS = "fuzz"
TARGET = "s"
EXAMPLES = 60
#: Byte edits per body, at most: fewer than in process, so more bodies reach validation and the store.
BYTE_EDITS = 1
TRACEBACK = b"Traceback (most recent call last)"
UNSERVED_TYPES = ("text/plain", "application/json;charset=utf-16", "application/x-www-form-urlencoded", "*/*", ";")
#: A custom resource too: its schema has types, bounds, a pattern, an enum, int-or-string, a set, a map,
#: required fields and a subtree that keeps unknown fields.
WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 0, "maximum": 10},
                "name": {"type": "string", "maxLength": 20, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "ratio": {"type": "number", "format": "double"},
                "when": {"type": "string", "format": "date-time"},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
WIDGETS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.fuzz.example.com"},
    "spec": {
        "group": "fuzz.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                "subresources": {"status": {}},
            }
        ],
    },
}
ALL_SAMPLES = {
    **SAMPLES,
    "widgets": {
        "apiVersion": "fuzz.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": TARGET},
        "spec": {
            "size": 1,
            "name": "w",
            "mode": "a",
            "port": 80,
            "tags": ["x"],
            "labels": {"a": "b"},
            "free": {"any": [1, {"thing": None}]},
            "ratio": 0.5,
            "when": "2024-01-01T00:00:00Z",
        },
    },
}
GROUP_VERSION = {plural: obj["apiVersion"] for plural, obj in ALL_SAMPLES.items()}


def collection(plural: str) -> str:
    group_version = GROUP_VERSION[plural]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    return f"{base}/namespaces/{NS}/{plural}"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def session(apiserver: RunningApiServer) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # no proxies, no REQUESTS_CA_BUNDLE: loopback and our CA only
        http.verify = str(apiserver.pki.ca_cert)
        http.cert = (str(apiserver.pki.admin_cert), str(apiserver.pki.admin_key))
        namespace: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        assert http.post(f"{apiserver.url}/api/v1/namespaces", json=namespace, timeout=30).status_code == 201
        crds = f"{apiserver.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        assert http.post(crds, json=WIDGETS_CRD, timeout=30).status_code == 201
        deadline = time.monotonic() + 30
        while http.get(apiserver.url + collection("widgets"), timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the Widget CRD was not served in time"
            time.sleep(0.1)
        for plural, obj in ALL_SAMPLES.items():
            created = http.post(apiserver.url + collection(plural), json=obj, timeout=30)
            assert created.status_code == 201, created.text
        yield http


#: (method, content type): each gets EXAMPLES cases of its own, so each is covered whatever Hypothesis favours.
REQUESTS = [
    *(("POST", media) for media in (JSON, YAML, PROTOBUF)),
    *(("PUT", media) for media in (JSON, YAML, PROTOBUF)),
    *(("PATCH", patch_type) for patch_type in PATCH_TYPES),
]


@st.composite
def requests_to_send(draw: st.DrawFn, method: str, media: str) -> tuple[str, str, bytes, str]:
    """(plural, content type, body, fieldValidation); now and then a content type nobody serves."""
    if method == "PATCH":
        plural, _, body = draw(patch_bodies(ALL_SAMPLES, edits=BYTE_EDITS, patch_type=media))
    elif media == PROTOBUF:  # built-in kinds only: custom resources have no protobuf
        plural = draw(st.sampled_from(sorted(SAMPLES)))
        sample = SAMPLES[plural]
        _, _, body = draw(protobuf_bodies((sample["apiVersion"], sample["kind"]), edits=BYTE_EDITS))
    else:
        bodies = json_bodies if media == JSON else yaml_bodies
        plural, body = draw(bodies(ALL_SAMPLES, edits=BYTE_EDITS))
    content_type = draw(st.sampled_from(UNSERVED_TYPES)) if draw(one_in(20)) else media
    directive = "Bogus" if draw(one_in(30)) else draw(st.sampled_from(["", "Strict", "Warn", "Ignore", "strict"]))
    return plural, content_type, body, directive


State = tuple[str, list[tuple[str, str]], bytes]


def state(session: requests.Session, base: str, plural: str) -> State:
    """(the collection's list resourceVersion, its items' names and versions, the target's bytes), read
    consistently: any write anywhere moves the list resourceVersion."""
    listed = session.get(base + collection(plural), timeout=30)
    assert listed.status_code == 200, listed.text
    target = session.get(f"{base}{collection(plural)}/{TARGET}", timeout=30)
    assert target.status_code == 200, target.text
    items = [(item["metadata"]["name"], item["metadata"]["resourceVersion"]) for item in listed.json()["items"]]
    return listed.json()["metadata"]["resourceVersion"], items, target.content


def changed(plural: str, before: State, after: State) -> bool:
    """Services are excepted from the list resourceVersion: their cluster IPs and node ports are taken
    before the write and given back after a failed one — store writes, as in upstream's service REST."""
    if plural == "services":
        return before[1:] != after[1:]
    return before != after


def check(response: requests.Response, content_type: str, where: str, found: Findings) -> None:
    code = response.status_code
    if TRACEBACK in response.content:
        found.problems.append(f"traceback in the body for {where}")
    if code < 400:
        return
    try:
        status = json.loads(response.content)
    except ValueError:
        found.problems.append(f"{code} without a Status body for {where}: {response.content[:200]!r}")
        return
    if status.get("kind") != "Status" or status.get("code") != code:
        found.problems.append(f"{code} with a body that is not its Status for {where}: {response.content[:200]!r}")
    found.reasons[f"{code} {re.sub(r'[0-9]+', 'N', str(status.get('message')))[:60]}"] += 1
    if code >= 500:
        found.problems.append(f"{code} for {where}: {status.get('message')}")


@pytest.fixture(scope="module")
def found() -> Iterator[Findings]:
    findings = Findings()
    yield findings
    print(
        f"\nbody fuzz over HTTPS: {sum(findings.statuses.values())} requests, "
        f"statuses {sorted(findings.statuses.items())}; "
        f"most frequent errors {findings.reasons.most_common(12)}"
    )


@pytest.mark.parametrize(("method", "media"), REQUESTS)
def test_hostile_bodies_get_4xx_and_change_nothing(
    apiserver: RunningApiServer, session: requests.Session, found: Findings, method: str, media: str
) -> None:
    base = apiserver.url
    problems = len(found.problems)

    @given(case=requests_to_send(method, media))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: tuple[str, str, bytes, str]) -> None:
        plural, content_type, body, directive = case
        path = collection(plural) + ("" if method == "POST" else f"/{TARGET}")
        params = {"fieldValidation": directive} if directive else {}
        if method == "PATCH":
            params["fieldManager"] = "fuzzer"
        before = state(session, base, plural)
        response = session.request(
            method, base + path, data=body, params=params, headers={"Content-Type": content_type}, timeout=30
        )
        found.statuses[(method, response.status_code)] += 1
        where = f"{method} {path}?{params} ({content_type}): {body[:300]!r}"
        check(response, content_type, where, found)
        if response.status_code >= 400 and changed(plural, before, state(session, base, plural)):
            found.problems.append(f"a rejected request ({response.status_code}) changed {plural}: {where}")

    run()
    mine = found.problems[problems:]
    assert not mine, "\n\n".join(mine[:20]) + f"\n\n{len(mine)} problems"


def test_server_stayed_healthy(apiserver: RunningApiServer, session: requests.Session) -> None:
    """After the fuzzing: still ready, and no unexpected exception logged (the app logs each one it turns
    into a 500)."""
    assert session.get(f"{apiserver.url}/readyz", timeout=30).status_code == 200
    unexpected = [line for line in apiserver.log_err.read_text().splitlines() if "ERROR skiff.apiserver.app" in line]
    assert not unexpected, "\n".join(unexpected[:20])


def test_yaml_alias_bomb_is_refused_and_the_server_stays_up(
    apiserver: RunningApiServer, session: requests.Session
) -> None:
    """A billion laughs in an apply patch: 400 at once (it was 10^9 values once written)."""
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        f"metadata: {{name: {TARGET}}}",
        "x: &l0 [a, a, a, a, a, a, a, a, a, a]",
    ]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
    before = state(session, apiserver.url, "configmaps")
    response = session.patch(
        f"{apiserver.url}{collection('configmaps')}/{TARGET}",
        data="\n".join(lines).encode(),
        params={"fieldManager": "fuzzer"},
        headers={"Content-Type": "application/apply-patch+yaml"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "excessive aliasing" in response.json()["message"]
    assert state(session, apiserver.url, "configmaps") == before


def test_control_characters_in_a_warning_become_spaces(apiserver: RunningApiServer, session: requests.Session) -> None:
    """An unknown field named with control characters: its Warning header had them, aiohttp refused to
    write it and dropped the connection without an answer — after the patch was stored."""
    response = session.patch(
        f"{apiserver.url}{collection('configmaps')}/{TARGET}",
        data=b'{"x\\n\\u0001y": 1}',
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Warning"] == '299 - "unknown field \\"x  y\\""'
