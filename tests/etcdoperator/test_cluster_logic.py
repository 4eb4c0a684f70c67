"""The cluster controller's pure decisions: names from peer URLs, stuck pods, loss reports, freshest status."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.etcdoperator.cluster_controller import _rv
from skiff.etcdoperator.cluster_view import member_name_from_url, stuck
from skiff.etcdoperator.conditions import replace_condition
from skiff.etcdoperator.etcdclient import Member
from skiff.etcdoperator.rebuild import loss_message


@pytest.mark.parametrize(
    ("urls", "name"),
    [
        (("http://demo-abc.demo.ns.svc.cluster.local:2380",), "demo-abc"),
        (("http://127.0.0.5:2380",), ""),  # an address names no member
        ((), ""),
    ],
)
def test_an_unstarted_learner_is_named_by_its_peer_url(urls: tuple[str, ...], name: str) -> None:
    assert member_name_from_url(Member(1, "", urls, (), True)) == name


def _pod(reason: str | None, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}} if reason else {"running": {}}
    return {"status": {"containerStatuses": [{"name": "etcd", "state": state}]}}


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (_pod("ErrImagePull", "no etcd 3.6.x binary"), "ErrImagePull"),
        (_pod("ImagePullBackOff"), "ImagePullBackOff"),
        (_pod("CrashLoopBackOff"), "CrashLoopBackOff"),
        (_pod("ContainerCreating"), None),  # on its way, not stuck
        (_pod(None), None),
        (None, None),
    ],
)
def test_stuck_pods(pod: dict[str, Any] | None, reason: str | None) -> None:
    found = stuck(pod)
    assert (found[0] if found else None) == reason


def test_stuck_message_carries_the_kubelets_words() -> None:
    assert stuck(_pod("ErrImagePull", "no etcd 3.6.x binary")) == ("ErrImagePull", "no etcd 3.6.x binary")


@pytest.mark.parametrize(
    ("recovery", "text"),
    [
        (
            {"source": "backup b", "revision": 10, "lastObservedRevision": 15},
            "restored from backup b at revision 10; revisions 11..15 (5) written after it are lost",
        ),
        (
            {"source": "member m's snapshot", "revision": 15, "lastObservedRevision": 15},
            "restored from member m's snapshot at revision 15; no revision the operator observed (last 15) is missing",
        ),
    ],
)
def test_loss_window_is_reported_in_revisions(recovery: dict[str, Any], text: str) -> None:
    assert loss_message(recovery) == text


def test_a_condition_keeps_its_transition_time_while_only_the_message_changes() -> None:
    status: dict[str, Any] = {}
    replace_condition(status, "Degraded", "True", "MembersUnhealthy", "1 of 3 ready", 100.0)
    replace_condition(status, "Degraded", "True", "MembersUnhealthy", "2 of 3 ready", 200.0)
    (cond,) = status["conditions"]
    assert cond["message"] == "2 of 3 ready"
    assert cond["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    replace_condition(status, "Degraded", "False", "Healthy", "3 of 3 ready", 300.0)
    (cond,) = status["conditions"]
    assert (cond["status"], cond["lastTransitionTime"]) == ("False", "1970-01-01T00:05:00Z")


@pytest.mark.parametrize(("rv", "value"), [("42", 42), ("", 0), (None, 0), ("x1", 0)])
def test_resource_versions_compare_as_numbers(rv: str | None, value: int) -> None:
    assert _rv({"metadata": {"resourceVersion": rv}}) == value
