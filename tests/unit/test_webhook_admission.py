"""Admission webhooks against a fake reader and a fake caller: matching, answers, policies, upstream's words."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.apiserver.scale import SCALE_VIEW
from skiff.registry import request_notes
from skiff.registry.admission import Attributes, MutatingWebhooks, Operation, ValidatingWebhooks
from skiff.registry.admission.webhooks import match_conditions
from skiff.registry.admission.webhooks.client import HttpsCaller
from skiff.registry.admission.webhooks.configuration import Rule, Webhook, compile_webhook
from skiff.registry.admission.webhooks.errors import CallError
from skiff.registry.admission.webhooks.matching import rule_matches
from skiff.registry.admission.webhooks.review import request_facts, verify_response
from skiff.registry.builtin import find
from skiff.registry.resource import Obj, ResourceInfo

GROUP = "admissionregistration.k8s.io"


def row(group: str, version: str, plural: str) -> ResourceInfo:
    info = find(group, version, plural)
    assert info is not None
    return info


PODS = row("", "v1", "pods")
NAMESPACES = row("", "v1", "namespaces")
NODES = row("", "v1", "nodes")
DEPLOYMENTS = row("apps", "v1", "deployments")
MUTATING_CONFIGS = row(GROUP, "v1", "mutatingwebhookconfigurations")


class FakeReader:
    def __init__(self, objects: dict[tuple[str, str], list[Obj]] | None = None) -> None:
        self.objects = objects or {}

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Obj | None:
        for obj in await self.list(group, plural, namespace):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Obj]:
        items = self.objects.get((group, plural), [])
        return [o for o in items if not namespace or o["metadata"].get("namespace", "") == namespace]


Answer = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class FakeCaller:
    """Answers per webhook name with ``answers[name](request)`` (a response body), or raises CallError."""

    def __init__(self, answers: dict[str, Answer | CallError]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, hook: Webhook, review: Mapping[str, Any]) -> Any:
        request = json.loads(json.dumps(review["request"]))  # what went over the wire
        self.calls.append((hook.name, request))
        answer = self.answers[hook.name]
        if isinstance(answer, CallError):
            raise answer
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["uid"], **answer(request)},
        }

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def allow(_: Mapping[str, Any]) -> dict[str, Any]:
    return {"allowed": True}


def patch(*ops: dict[str, Any]) -> Answer:
    encoded = base64.b64encode(json.dumps(list(ops)).encode()).decode()
    return lambda _: {"allowed": True, "patchType": "JSONPatch", "patch": encoded}


def hook(name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "clientConfig": {"url": f"https://127.0.0.1:1/{name}"},
        "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    base.update(fields)
    return base


def config(name: str, *hooks: dict[str, Any]) -> Obj:
    return {"metadata": {"name": name, "resourceVersion": "1"}, "webhooks": list(hooks)}


def reader(mutating: list[Obj] = (), validating: list[Obj] = (), **objects: list[Obj]) -> FakeReader:  # type: ignore[assignment]
    table: dict[tuple[str, str], list[Obj]] = {
        (GROUP, "mutatingwebhookconfigurations"): list(mutating),
        (GROUP, "validatingwebhookconfigurations"): list(validating),
        ("", "namespaces"): [
            {"metadata": {"name": "prod", "labels": {"env": "prod"}}},
            {"metadata": {"name": "dev", "labels": {"env": "dev"}}},
        ],
    }
    for plural, items in objects.items():
        table[("", plural)] = items
    return FakeReader(table)


def pod(name: str = "p", namespace: str = "prod", labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


def create(obj: Obj, info: ResourceInfo = PODS, **kw: Any) -> Attributes:
    meta = obj["metadata"]
    return Attributes(
        Operation.CREATE, info, meta.get("namespace", "") if info.namespaced else "", meta["name"], obj, **kw
    )


async def refused(plugin: MutatingWebhooks | ValidatingWebhooks, attrs: Attributes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await plugin.admit(attrs)
        await plugin.validate(attrs)
    return caught.value


# -- rules -------------------------------------------------------------------------------------


def rule(**fields: Any) -> Rule:
    spec = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], **fields}
    compiled = compile_webhook("c", 0, hook("h", rules=[spec]))
    return compiled.rules[0]


@pytest.mark.parametrize(
    ("spec", "attrs", "matches"),
    [
        pytest.param({}, create(pod()), True, id="exact"),
        pytest.param({"operations": ["UPDATE"]}, create(pod()), False, id="other-operation"),
        pytest.param({"operations": ["*"]}, create(pod()), True, id="any-operation"),
        pytest.param({"apiGroups": ["apps"]}, create(pod()), False, id="other-group"),
        pytest.param({"apiVersions": ["v2"]}, create(pod()), False, id="other-version"),
        pytest.param({"resources": ["*"]}, create(pod()), True, id="star-resource"),
        pytest.param({"resources": ["*"]}, create(pod(), subresource="status"), False, id="star-is-no-subresource"),
        pytest.param({"resources": ["pods/status"]}, create(pod(), subresource="status"), True, id="pods-status"),
        pytest.param({"resources": ["pods/status"]}, create(pod()), False, id="pods-status-not-pods"),
        pytest.param({"resources": ["*/*"]}, create(pod(), subresource="status"), True, id="star-star"),
        pytest.param(
            {"resources": ["*/scale"], "apiGroups": ["*"]},
            create({"metadata": {"name": "d", "namespace": "prod"}}, DEPLOYMENTS, subresource="scale"),
            True,
            id="star-scale",
        ),
        pytest.param({"scope": "Namespaced"}, create(pod()), True, id="namespaced"),
        pytest.param({"scope": "Cluster"}, create(pod()), False, id="cluster-not-namespaced"),
        pytest.param(
            {"scope": "Cluster", "resources": ["namespaces"]},
            create({"metadata": {"name": "x"}}, NAMESPACES),
            True,
            id="namespace-is-cluster",
        ),
        pytest.param(
            {"scope": "Namespaced", "resources": ["namespaces"]},
            create({"metadata": {"name": "x"}}, NAMESPACES),
            False,
            id="namespace-not-namespaced",
        ),
        pytest.param(
            {"scope": "Cluster", "resources": ["nodes"]},
            create({"metadata": {"name": "n"}}, NODES),
            True,
            id="node-cluster",
        ),
    ],
)
def test_rules_match_as_upstream(spec: dict[str, Any], attrs: Attributes, matches: bool) -> None:
    assert rule_matches(rule(**spec), request_facts(attrs, {})) is matches


# -- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "attrs", "called"),
    [
        pytest.param({"namespaceSelector": {"matchLabels": {"env": "prod"}}}, create(pod()), True, id="ns-match"),
        pytest.param(
            {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
            create(pod(namespace="dev")),
            False,
            id="ns-no-match",
        ),
        pytest.param(
            {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
            create({"metadata": {"name": "n"}}, NODES),
            True,
            id="ns-cluster-scoped-always",
        ),
        pytest.param(
            {"namespaceSelector": {"matchLabels": {"env": "new"}}},
            create({"metadata": {"name": "fresh", "labels": {"env": "new"}}}, NAMESPACES),
            True,
            id="ns-object-own-labels",
        ),
        pytest.param(
            {"objectSelector": {"matchLabels": {"a": "b"}}}, create(pod(labels={"a": "b"})), True, id="object-match"
        ),
        pytest.param({"objectSelector": {"matchLabels": {"a": "b"}}}, create(pod()), False, id="object-no-match"),
        pytest.param(
            {"objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}},
            create(pod(labels={"skip": "1"})),
            False,
            id="object-expression",
        ),
        pytest.param(
            {"objectSelector": {"matchLabels": {"a": "b"}}},
            Attributes(Operation.UPDATE, PODS, "prod", "p", pod(), pod(labels={"a": "b"})),
            True,
            id="object-old-labels",
        ),
    ],
)
async def test_selectors_choose_the_webhooks_called(fields: dict[str, Any], attrs: Attributes, called: bool) -> None:
    caller = FakeCaller({"v": allow})
    plugin = ValidatingWebhooks(reader(validating=[config("c", hook("v", **fields))]), caller=caller)
    await plugin.validate(attrs)
    assert caller.names() == (["v"] if called else [])


async def test_a_missing_namespace_is_upstreams_404() -> None:
    caller = FakeCaller({"v": allow})
    plugin = ValidatingWebhooks(
        reader(validating=[config("c", hook("v", namespaceSelector={"matchLabels": {"env": "prod"}}))]), caller=caller
    )
    err = await refused(plugin, create(pod(namespace="gone")))
    assert (err.code, err.message) == (404, 'namespaces "gone" not found')


# -- the review sent -------------------------------------------------------------------------------


class User:
    name, uid, groups, extra = "alice", "u-1", ("devs",), {"scopes": ("a",)}


async def test_the_request_carries_upstreams_fields() -> None:
    caller = FakeCaller({"v": allow})
    every = [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}]
    plugin = ValidatingWebhooks(
        reader(validating=[config("c", hook("v", rules=every))]), caller=caller, new_uid=lambda: "uid-1"
    )
    old = pod(labels={"v": "1"})
    await plugin.validate(Attributes(Operation.UPDATE, PODS, "prod", "p", pod(), old, "status", True, User()))
    ((_, request),) = caller.calls
    assert request == {
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "subResource": "status",
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "requestSubResource": "status",
        "name": "p",
        "namespace": "prod",
        "operation": "UPDATE",
        "userInfo": {"username": "alice", "uid": "u-1", "groups": ["devs"], "extra": {"scopes": ["a"]}},
        "object": pod(),
        "oldObject": old,
        "dryRun": True,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]},
    }


async def test_validating_webhooks_see_the_deleted_object_as_old_object() -> None:
    caller = FakeCaller({"v": allow})
    stored = pod(labels={"x": "y"})
    plugin = ValidatingWebhooks(reader(validating=[config("c", hook("v"))], pods=[stored]), caller=caller)
    await plugin.validate(Attributes(Operation.DELETE, PODS, "prod", "p"))
    request = caller.calls[0][1]
    assert (request["object"], request["oldObject"]["metadata"]["labels"]) == (None, {"x": "y"})
    assert request["options"] == {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}


async def test_webhook_configurations_are_exempt() -> None:
    caller = FakeCaller({"m": allow})
    plugin = MutatingWebhooks(reader(mutating=[config("c", hook("m"))]), caller=caller)
    await plugin.admit(create(config("other"), MUTATING_CONFIGS))
    assert caller.calls == []


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "reason", "message"),
    [
        pytest.param(
            {"message": "no way", "code": 403, "reason": "Forbidden"},
            403,
            "Forbidden",
            'admission webhook "v" denied the request: no way',
            id="message",
        ),
        pytest.param(
            {"reason": "NotAllowed"},
            400,
            "NotAllowed",
            'admission webhook "v" denied the request: NotAllowed',
            id="reason-only",
        ),
        pytest.param(None, 400, "", 'admission webhook "v" denied the request without explanation', id="nothing"),
        pytest.param(
            {"code": 200, "message": "x"}, 400, "", 'admission webhook "v" denied the request: x', id="code-below-400"
        ),
    ],
)
async def test_a_denial_is_upstreams_status_error(
    status: dict[str, Any] | None, code: int, reason: str, message: str
) -> None:
    answer: dict[str, Any] = {"allowed": False}
    if status is not None:
        answer["status"] = status
    plugin = ValidatingWebhooks(reader(validating=[config("c", hook("v"))]), caller=FakeCaller({"v": lambda _: answer}))
    err = await refused(plugin, create(pod()))
    assert (err.code, err.reason, err.message) == (code, reason, message)


async def test_mutating_patches_apply_in_order_and_defaults_follow() -> None:
    caller = FakeCaller(
        {
            "a": patch({"op": "add", "path": "/metadata/labels/added", "value": "a"}),
            "b": lambda request: {"allowed": True} if request["object"]["metadata"]["labels"]["added"] == "a" else {},
        }
    )
    plugin = MutatingWebhooks(reader(mutating=[config("c", hook("a"), hook("b"))]), caller=caller)
    attrs = create(pod())
    await plugin.admit(attrs)
    assert attrs.obj is not None and attrs.obj["metadata"]["labels"] == {"added": "a"}
    assert caller.names() == ["a", "b"]


async def test_if_needed_webhooks_are_reinvoked_once_after_a_later_change() -> None:
    caller = FakeCaller(
        {
            "first": allow,
            "never": allow,
            "changer": patch({"op": "add", "path": "/metadata/labels/changed", "value": "1"}),
        }
    )
    hooks = [
        hook("first", reinvocationPolicy="IfNeeded"),
        hook("never"),
        hook("changer", reinvocationPolicy="IfNeeded"),
    ]
    plugin = MutatingWebhooks(reader(mutating=[config("c", *hooks)]), caller=caller)
    await plugin.admit(create(pod()))
    assert caller.names() == ["first", "never", "changer", "first"]


async def test_a_scale_write_is_sent_as_a_scale_and_its_patch_written_back() -> None:
    caller = FakeCaller({"m": patch({"op": "replace", "path": "/spec/replicas", "value": 5})})
    scale_rule = [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*/scale"]}]
    plugin = MutatingWebhooks(reader(mutating=[config("c", hook("m", rules=scale_rule))]), caller=caller,
                              views={"scale": SCALE_VIEW})  # fmt: skip
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "d", "namespace": "prod", "resourceVersion": "7"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}}}  # fmt: skip
    attrs = Attributes(Operation.UPDATE, DEPLOYMENTS, "prod", "d", deployment, dict(deployment), "scale")
    await plugin.admit(attrs)
    request = caller.calls[0][1]
    assert request["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert (request["resource"]["resource"], request["subResource"]) == ("deployments", "scale")
    assert request["object"]["spec"] == {"replicas": 2}
    assert attrs.obj is not None and attrs.obj["spec"]["replicas"] == 5 and attrs.obj["kind"] == "Deployment"


async def test_a_subresource_create_is_sent_with_its_own_kind() -> None:
    caller = FakeCaller({"v": allow})
    every = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/eviction"]}]
    plugin = ValidatingWebhooks(reader(validating=[config("c", hook("v", rules=every))]), caller=caller)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "prod"}}
    await plugin.validate(Attributes(Operation.CREATE, PODS, "prod", "p", eviction, subresource="eviction"))
    assert caller.calls[0][1]["kind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}


async def test_warnings_and_audit_annotations_are_noted_for_the_request() -> None:
    def answer(_: Mapping[str, Any]) -> dict[str, Any]:
        return {"allowed": True, "warnings": ["careful"], "auditAnnotations": {"checked": "yes"}}

    down = CallError("unreachable")
    caller = FakeCaller({"m": answer, "gone": down})
    hooks = [hook("m"), hook("gone", failurePolicy="Ignore")]
    plugin = MutatingWebhooks(reader(mutating=[config("c", *hooks)]), caller=caller)
    notes = request_notes.begin()
    await plugin.admit(create(pod()))
    assert notes.warnings == ["careful"]
    assert notes.audit_annotations == {
        "m/checked": "yes",
        "mutation.webhook.admission.k8s.io/round_0_index_0": '{"configuration":"c","webhook":"m","mutated":false}',
        "failed-open.mutation.webhook.admission.k8s.io/round_0_index_1": "gone",
        "mutation.webhook.admission.k8s.io/round_0_index_1": '{"configuration":"c","webhook":"gone","mutated":false}',
    }


async def test_a_patch_on_delete_is_an_internal_error() -> None:
    caller = FakeCaller({"m": patch({"op": "add", "path": "/x", "value": 1})})
    plugin = MutatingWebhooks(reader(mutating=[config("c", hook("m"))]), caller=caller)
    err = await refused(plugin, Attributes(Operation.DELETE, PODS, "prod", "p"))
    assert err.code == 500
    assert err.message == (
        'Internal error occurred: admission webhook "m" attempted to modify the object, '
        "which is not supported for this operation"
    )


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_failure_policy_decides_what_an_unreachable_webhook_means(policy: str) -> None:
    down = CallError('failed to call webhook: Post "https://127.0.0.1:1/v?timeout=10s": connection refused')
    plugin = ValidatingWebhooks(
        reader(validating=[config("c", hook("v", failurePolicy=policy))]), caller=FakeCaller({"v": down})
    )
    if policy == "Ignore":
        await plugin.validate(create(pod()))
        return
    err = await refused(plugin, create(pod()))
    assert (err.code, err.reason) == (500, "InternalError")
    assert err.message == (
        'Internal error occurred: failed calling webhook "v": failed to call webhook: '
        'Post "https://127.0.0.1:1/v?timeout=10s": connection refused'
    )


@pytest.mark.parametrize(
    ("side_effects", "called"),
    [
        pytest.param("None", True, id="none"),
        pytest.param("NoneOnDryRun", True, id="none-on-dry-run"),
        pytest.param("Unknown", False, id="unknown"),
        pytest.param("Some", False, id="some"),
    ],
)
async def test_dry_run_reaches_only_webhooks_without_side_effects(side_effects: str, called: bool) -> None:
    caller = FakeCaller({"m": allow})
    plugin = MutatingWebhooks(reader(mutating=[config("c", hook("m", sideEffects=side_effects))]), caller=caller)
    if called:
        await plugin.admit(create(pod(), dry_run=True))
        assert caller.calls[0][1]["dryRun"] is True
        return
    err = await refused(plugin, create(pod(), dry_run=True))
    assert (err.code, err.reason, err.message) == (400, "BadRequest", 'admission webhook "m" does not support dry run')
    assert caller.calls == []


@pytest.mark.parametrize(
    ("review", "mutating", "why"),
    [
        pytest.param({}, False, "webhook response was absent", id="absent"),
        pytest.param({"response": {"uid": "other"}}, False, 'expected response.uid="u", got "other"', id="uid"),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u"}},
            False,
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
            "admission.k8s.io/v1beta1, Kind=AdmissionReview",
            id="version",
        ),
        pytest.param(
            {"response": {"uid": "u", "patch": "W10="}},
            True,
            "webhook returned response.patch but not response.patchType",
            id="patch-without-type",
        ),
        pytest.param(
            {"response": {"uid": "u", "patch": "W10=", "patchType": "JSONPatch"}},
            False,
            "validating webhook may not return response.patch",
            id="validating-patch",
        ),
    ],
)
def test_bad_answers_are_call_errors(review: dict[str, Any], mutating: bool, why: str) -> None:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", **review}
    with pytest.raises(CallError) as caught:
        verify_response(review, "u", "v1", mutating=mutating)
    assert caught.value.reason == f"received invalid webhook response: {why}"


# -- matchConditions ---------------------------------------------------------------------------


@pytest.mark.skipif(not match_conditions.CEL_AVAILABLE, reason="cel-python is not installed")
@pytest.mark.parametrize(
    ("expression", "policy", "outcome"),
    [
        pytest.param("!('skip' in object.metadata.labels)", "Fail", "called", id="true"),
        pytest.param("'skip' in object.metadata.labels", "Fail", "skipped", id="false"),
        pytest.param("request.userInfo.username == 'alice'", "Fail", "called", id="request-variable"),
        pytest.param("object.metadata.labels['missing'] == 'x'", "Ignore", "skipped", id="error-ignore"),
        pytest.param("object.metadata.labels['missing'] == 'x'", "Fail", "refused", id="error-fail"),
    ],
)
async def test_match_conditions(expression: str, policy: str, outcome: str) -> None:
    caller = FakeCaller({"v": allow})
    conditions = [{"name": "c1", "expression": expression}]
    plugin = ValidatingWebhooks(
        reader(validating=[config("c", hook("v", matchConditions=conditions, failurePolicy=policy))]), caller=caller
    )
    attrs = create(pod(), user=User())
    if outcome == "refused":
        err = await refused(plugin, attrs)
        assert err.code == 403 and err.message.startswith('pods "p" is forbidden: expression ')
        return
    await plugin.validate(attrs)
    assert caller.names() == (["v"] if outcome == "called" else [])


# -- service resolution --------------------------------------------------------------------------


def service(cluster_ip: str = "127.254.0.9", port_name: str = "https") -> Obj:
    return {
        "metadata": {"name": "hooks", "namespace": "prod"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": port_name, "port": 443, "targetPort": 8443}],
        },
    }


def endpoints(ip: str, port: int, port_name: str = "https") -> Obj:
    return {
        "metadata": {"name": "hooks", "namespace": "prod"},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": port_name, "port": port}]}],
    }


@pytest.mark.parametrize(
    ("objects", "port", "resolved"),
    [
        pytest.param(
            {"services": [service()], "endpoints": [endpoints("127.0.0.7", 8443)]},
            443,
            ("127.0.0.7", 8443),
            id="endpoint",
        ),
        pytest.param({"services": [service()]}, 443, ("127.254.0.9", 443), id="cluster-ip"),
        pytest.param({}, 443, 'service "hooks" not found', id="no-service"),
        pytest.param({"services": [service()]}, 444, 'no service port 444 found for service "hooks"', id="no-port"),
        pytest.param(
            {"services": [service("None")]},
            443,
            'no endpoints available for service "hooks"',
            id="headless-without-endpoints",
        ),
    ],
)
async def test_service_references_resolve_through_endpoints_then_cluster_ip(
    objects: dict[str, list[Obj]], port: int, resolved: tuple[str, int] | str
) -> None:
    caller = HttpsCaller(reader(**objects))
    ref = compile_webhook(
        "c", 0, hook("h", clientConfig={"service": {"namespace": "prod", "name": "hooks", "port": port}})
    ).client.service
    assert ref is not None
    if isinstance(resolved, tuple):
        assert await caller._resolve(ref) == resolved
        return
    with pytest.raises(Exception, match=resolved):
        await caller._resolve(ref)
