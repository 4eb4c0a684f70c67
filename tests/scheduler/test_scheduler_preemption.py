"""Preemption: the fewest victims, the cheapest node, eligibility, and the message when it succeeds."""

from __future__ import annotations

from typing import Any

import pytest
from scheduler_objects import make_node, make_pod

from skiff.scheduler import preemption
from skiff.scheduler.cache import SchedulerCache
from skiff.scheduler.framework import FitError, Framework
from skiff.scheduler.podstate import PodState

Obj = dict[str, Any]


def cache_with(nodes: list[Obj], pods: list[Obj]) -> SchedulerCache:
    cache = SchedulerCache()
    for node in nodes:
        cache.add_node(node)
    for pod in pods:
        cache.add_pod(pod)
    return cache


def attempt(cache: SchedulerCache, pod: Obj) -> tuple[PodState, FitError]:
    state = PodState.of(pod)
    with pytest.raises(FitError) as caught:
        Framework(cache).schedule(state)
    return state, caught.value


def test_fewest_victims_reprieving_highest_priority_first() -> None:
    pods = [
        make_pod("low-a", cpu="1", priority=1, node_name="n"),
        make_pod("low-b", cpu="2", priority=5, node_name="n"),
        make_pod("mid", cpu="1", priority=100, node_name="n"),
    ]
    cache = cache_with([make_node("n", cpu="4")], pods)
    state, error = attempt(cache, make_pod("p", cpu="2", priority=50))
    candidate = preemption.find_candidate(state, cache, error.unresolvable)
    assert candidate is not None
    assert (candidate.node, [v.key for v in candidate.victims]) == ("n", ["default/low-b"])


def test_node_with_cheapest_victims_is_chosen() -> None:
    pods = [make_pod("on-a", cpu="4", priority=5, node_name="a"), make_pod("on-b", cpu="4", priority=1, node_name="b")]
    cache = cache_with([make_node("a"), make_node("b")], pods)
    state, error = attempt(cache, make_pod("p", cpu="2", priority=10))
    candidate = preemption.find_candidate(state, cache, error.unresolvable)
    assert candidate is not None and candidate.node == "b"


def test_no_candidate_when_victims_would_not_help() -> None:
    taint = {"key": "k", "effect": "NoSchedule"}
    pods = [make_pod("same", cpu="4", priority=10, node_name="a"), make_pod("low", cpu="1", priority=0, node_name="t")]
    cache = cache_with([make_node("a"), make_node("t", taints=[taint])], pods)
    state, error = attempt(cache, make_pod("p", cpu="2", priority=10))
    assert error.unresolvable == {"t"}
    assert preemption.find_candidate(state, cache, error.unresolvable) is None


def test_eligibility() -> None:
    victim = make_pod("v", cpu="4", priority=0, node_name="n")
    victim["metadata"]["deletionTimestamp"] = "2026-11-26T20:00:00Z"
    cache = cache_with([make_node("n")], [victim])
    assert not preemption.eligible(PodState.of(make_pod("p", priority=9, preemptionPolicy="Never")), cache, None)
    assert not preemption.eligible(PodState.of(make_pod("p", priority=9)), cache, "n")  # wait for the victim
    assert preemption.eligible(PodState.of(make_pod("p", priority=9)), cache, None)


def test_message_without_preemption_part_when_preempting() -> None:
    cache = cache_with([make_node("n", cpu="1")], [make_pod("low", cpu="1", node_name="n")])
    _, error = attempt(cache, make_pod("p", cpu="1", priority=10))
    error.preempting = True
    assert error.message() == "0/1 nodes are available: 1 Insufficient cpu."


def test_room_made_for_a_nominated_pod_is_kept_from_lower_priority_pods() -> None:
    from skiff.scheduler.cache import PodInfo

    cache = cache_with([make_node("n", cpu="2")], [])
    framework = Framework(cache)
    framework.nominated["default/preemptor"] = (PodInfo.of(make_pod("preemptor", cpu="2", priority=10)), "n")
    with pytest.raises(FitError):
        framework.schedule(PodState.of(make_pod("low", cpu="1", priority=0)))
    assert framework.schedule(PodState.of(make_pod("higher", cpu="1", priority=20))).node == "n"
    assert framework.schedule(PodState.of(make_pod("preemptor", cpu="2", priority=10))).node == "n"
