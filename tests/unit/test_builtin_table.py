"""The built-in resource table: every row sane, lookups, and the Table helpers (table_format)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skiff.registry import builtin
from skiff.registry.resource import ALL_VERBS, ResourceInfo
from skiff.registry.strategies import ObjectStrategy
from skiff.registry.table_format import build_row, column_definitions, format_labels, human_duration, selector_string

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ROW_IDS = [f"{r.group or 'core'}/{r.plural}" for r in builtin.BUILTIN]


@pytest.mark.parametrize("info", builtin.BUILTIN, ids=ROW_IDS)
def test_row_is_sane(info: ResourceInfo) -> None:
    assert info.plural == info.plural.lower() and info.plural.isalpha()
    assert info.singular == info.kind.lower()
    assert info.kind[0].isupper()
    assert info.group in builtin.GROUP_ORDER
    assert info.version == builtin.PREFERRED_VERSIONS[info.group] == "v1"
    assert set(info.verbs) <= set(ALL_VERBS)
    assert list(info.verbs) == sorted(info.verbs), "discovery lists verbs sorted"
    assert set(info.subresources) <= {
        "approval", "attach", "binding", "ephemeralcontainers", "eviction", "exec", "finalize", "log", "portforward",
        "proxy", "scale", "status", "token",
    }  # fmt: skip
    if isinstance(info.strategy, ObjectStrategy):
        assert info.strategy.namespaced == info.namespaced
    if "status" in info.subresources and info.verbs == ALL_VERBS:
        assert info.strategy.has_status
    if "scale" in info.subresources:
        assert info.strategy.scale is not None


@pytest.mark.parametrize("info", builtin.BUILTIN, ids=ROW_IDS)
def test_every_table_renders_a_bare_object(info: ResourceInfo) -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": "2025-01-02T03:04:00Z"}}
    columns = column_definitions(info)
    cells = build_row(info, obj, NOW)
    assert len(cells) == len(columns)
    names = [c["name"] for c in columns]
    assert len(names) == len(set(names))
    name_at = [i for i, c in enumerate(columns) if c["format"] == "name"]
    assert len(name_at) == 1 and cells[name_at[0]] == "x"
    if "Age" in names:
        assert cells[names.index("Age")] == "5s"
        assert all(c["priority"] == 0 for c in columns[: names.index("Age")] if c["name"] != "Name")


def test_rows_are_unique_and_grouped_in_order() -> None:
    keys = [(r.group, r.version, r.plural) for r in builtin.BUILTIN]
    assert len(keys) == len(set(keys))
    order = [builtin.GROUP_ORDER.index(r.group) for r in builtin.BUILTIN]
    assert order == sorted(order)
    grouped = builtin.by_group_version()
    assert list(grouped) == [g + "/v1" if g else "v1" for g in builtin.GROUP_ORDER]
    for rows in grouped.values():
        assert [r.plural for r in rows] == sorted(r.plural for r in rows)


@pytest.mark.parametrize(
    ("group", "plural", "kind", "namespaced", "short_names", "categories", "subresources"),
    [
        pytest.param("", "pods", "Pod", True, ("po",), ("all",), builtin.POD_SUBRESOURCES, id="pods"),
        pytest.param("", "services", "Service", True, ("svc",), ("all",), ("proxy", "status"), id="services"),
        pytest.param("", "namespaces", "Namespace", False, ("ns",), (), ("finalize", "status"), id="namespaces"),
        pytest.param("", "nodes", "Node", False, ("no",), (), ("proxy", "status"), id="nodes"),
        pytest.param("", "configmaps", "ConfigMap", True, ("cm",), (), (), id="configmaps"),
        pytest.param("", "secrets", "Secret", True, (), (), (), id="secrets"),
        pytest.param("", "endpoints", "Endpoints", True, ("ep",), (), (), id="endpoints"),
        pytest.param("", "resourcequotas", "ResourceQuota", True, ("quota",), (), ("status",), id="quota"),
        pytest.param("", "limitranges", "LimitRange", True, ("limits",), (), (), id="limitranges"),
        pytest.param("", "replicationcontrollers", "ReplicationController", True, ("rc",), ("all",),
                     ("scale", "status"), id="rc"),
        pytest.param("apps", "deployments", "Deployment", True, ("deploy",), ("all",), ("scale", "status"),
                     id="deployments"),
        pytest.param("apps", "daemonsets", "DaemonSet", True, ("ds",), ("all",), ("status",), id="daemonsets"),
        pytest.param("apps", "statefulsets", "StatefulSet", True, ("sts",), ("all",), ("scale", "status"), id="sts"),
        pytest.param("apps", "controllerrevisions", "ControllerRevision", True, (), (), (), id="controllerrevisions"),
        pytest.param("batch", "cronjobs", "CronJob", True, ("cj",), ("all",), ("status",), id="cronjobs"),
        pytest.param("batch", "jobs", "Job", True, (), ("all",), ("status",), id="jobs"),
        pytest.param("events.k8s.io", "events", "Event", True, ("ev",), (), (), id="events.k8s.io"),
        pytest.param("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", False,
                     ("crd", "crds"), ("api-extensions",), ("status",), id="crds"),
        pytest.param("scheduling.k8s.io", "priorityclasses", "PriorityClass", False, ("pc",), (), (), id="pc"),
        pytest.param("storage.k8s.io", "storageclasses", "StorageClass", False, ("sc",), (), (), id="sc"),
        pytest.param("policy", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), (), ("status",),
                     id="pdb"),
        pytest.param("coordination.k8s.io", "leases", "Lease", True, (), (), (), id="leases"),
        pytest.param("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", False, (), (), (), id="clusterroles"),
        pytest.param("certificates.k8s.io", "certificatesigningrequests", "CertificateSigningRequest", False, ("csr",),
                     (), ("approval", "status"), id="csr"),
    ],
)  # fmt: skip
def test_rows_match_kubernetes_discovery(
    group: str,
    plural: str,
    kind: str,
    namespaced: bool,
    short_names: tuple[str, ...],
    categories: tuple[str, ...],
    subresources: tuple[str, ...],
) -> None:
    info = builtin.find(group, "v1", plural)
    assert info is not None
    assert (info.kind, info.namespaced, info.short_names, info.categories, info.subresources) == (
        kind,
        namespaced,
        short_names,
        categories,
        subresources,
    )


@pytest.mark.parametrize(
    ("group", "plural", "verbs"),
    [
        pytest.param("", "namespaces", ("create", "delete", "get", "list", "patch", "update", "watch"), id="ns"),
        pytest.param("authorization.k8s.io", "selfsubjectaccessreviews", ("create",), id="ssar"),
        pytest.param("authorization.k8s.io", "subjectaccessreviews", ("create",), id="sar"),
        pytest.param("authentication.k8s.io", "tokenreviews", ("create",), id="tokenreviews"),
        pytest.param("authentication.k8s.io", "selfsubjectreviews", ("create",), id="selfsubjectreviews"),
        pytest.param("", "pods", ALL_VERBS, id="pods"),
    ],
)
def test_verbs(group: str, plural: str, verbs: tuple[str, ...]) -> None:
    info = builtin.find(group, "v1", plural)
    assert info is not None and info.verbs == verbs


def test_find_misses() -> None:
    assert builtin.find("apps", "v1beta1", "deployments") is None
    assert builtin.find("", "v1", "deployments") is None
    assert builtin.find("apps", "v1", "pods") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(-1.5, "0s", id="clock-skew"),
        pytest.param(0, "0s", id="now"),
        pytest.param(5, "5s", id="seconds"),
        pytest.param(119.9, "119s", id="under-two-minutes"),
        pytest.param(120, "2m", id="two-minutes"),
        pytest.param(182, "3m2s", id="minutes-seconds"),
        pytest.param(600, "10m", id="ten-minutes"),
        pytest.param(3 * 3600 - 1, "179m", id="under-three-hours"),
        pytest.param(3 * 3600, "3h", id="three-hours"),
        pytest.param(3 * 3600 + 300, "3h5m", id="hours-minutes"),
        pytest.param(8 * 3600 + 300, "8h", id="eight-hours"),
        pytest.param(47 * 3600, "47h", id="under-two-days"),
        pytest.param(48 * 3600, "2d", id="two-days"),
        pytest.param(50 * 3600, "2d2h", id="days-hours"),
        pytest.param(8 * 86400, "8d", id="eight-days"),
        pytest.param(729 * 86400, "729d", id="under-two-years"),
        pytest.param(730 * 86400, "2y", id="two-years"),
        pytest.param(731 * 86400, "2y1d", id="years-days"),
        pytest.param(9 * 365 * 86400, "9y", id="many-years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        pytest.param(None, "", id="nil"),
        pytest.param({}, "", id="empty"),
        pytest.param({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", id="labels-sorted"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
            "tier in (api,web)",
            id="in",
        ),
        pytest.param({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, "!x", id="does-not-exist"),
    ],
)
def test_selector_string(selector: object, text: str) -> None:
    assert selector_string(selector) == text


def test_format_labels() -> None:
    assert format_labels({}) == "<none>"
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"


def test_default_table_is_name_and_created_at() -> None:
    info = builtin.find("rbac.authorization.k8s.io", "v1", "roles")
    assert info is not None
    assert [c["name"] for c in column_definitions(info)] == ["Name", "Created At"]
    assert column_definitions(info)[1]["type"] == "date"
    obj = {"metadata": {"name": "r", "creationTimestamp": "2025-01-02T03:04:00+00:00"}}
    assert build_row(info, obj, NOW) == ["r", "2025-01-02T03:04:00Z"]
