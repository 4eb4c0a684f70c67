"""What one EtcdCluster looks like right now: its pods and claims from the API, its membership from etcd itself.

The operator keeps no memory that matters (the original's in-memory member
list was its source of truth and was lost on every restart): each reconcile
rebuilds this view from the informers and from the members' own answers
(MemberList from any member that responds, Status from every member), so an
operator restarted at any point resumes from what is really there.

A cluster with client TLS is observed over https with the operator's
:class:`~skiff.etcdoperator.etcdclient.ClientTls` (``ClusterView.tls``); every
client the controller opens on its members comes from :meth:`ClusterView.client`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from skiff.controllers.pod_status import pod_condition
from skiff.etcdoperator import members as mb
from skiff.etcdoperator.etcdclient import ClientTls, EndpointStatus, EtcdClient, EtcdError, Member

Obj = dict[str, Any]
#: Per-call deadline for membership and status probes: a dead member must not stall the reconcile.
PROBE_TIMEOUT_S = 2.0
#: Container states that mean "this member will not come up by itself".
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "InvalidImageName"})
#: A member whose applied index trails the leader's by more than this is not caught up (not yet a safe next step).
CATCH_UP_SLACK = 50


@dataclass
class MemberState:
    """One member as the operator sees it; any of pod, claim, member may be missing."""

    name: str
    pod: Obj | None = None
    claim: Obj | None = None
    member: Member | None = None
    status: EndpointStatus | None = None
    #: The member's client port serves https (the cluster has client TLS).
    secure: bool = False

    @property
    def ip(self) -> str | None:
        return ((self.pod or {}).get("status") or {}).get("podIP") or None

    @property
    def client_url(self) -> str | None:
        return mb.client_url(self.ip, self.secure) if self.ip else None

    @property
    def healthy(self) -> bool:
        return self.status is not None and self.status.leader != 0 and not self.status.errors

    @property
    def ready(self) -> bool:
        cond = pod_condition(self.pod or {}, "Ready")
        return bool(cond and cond.get("status") == "True")

    @property
    def version_label(self) -> str:
        return str(((self.pod or {}).get("metadata", {}).get("annotations") or {}).get(mb.ANNOTATION_VERSION, ""))


@dataclass
class ClusterView:
    pods: list[Obj]
    claims: list[Obj]
    terminating: set[str]
    #: None when no member answered MemberList.
    membership: list[Member] | None
    states: dict[str, MemberState] = field(default_factory=dict)
    #: Members whose peer URL names no member of ours (added by hand): left alone, reported.
    unnamed: list[Member] = field(default_factory=list)
    #: How to reach members with client TLS; None: plaintext.
    tls: ClientTls | None = None

    def client_url(self, ip: str) -> str:
        return mb.client_url(ip, self.tls is not None)

    def client(self, url: str, timeout: float) -> EtcdClient:
        return EtcdClient(url, timeout=timeout, tls=self.tls)

    @property
    def leader_id(self) -> int:
        return next((s.status.leader for s in self.states.values() if s.status and s.status.leader), 0)

    @property
    def voters(self) -> list[MemberState]:
        return [s for s in self.states.values() if s.member is not None and not s.member.is_learner]

    @property
    def learners(self) -> list[Member]:
        return [m for m in self.membership or [] if m.is_learner]

    @property
    def has_quorum(self) -> bool:
        return self.leader_id != 0

    def revision(self) -> int:
        return max((s.status.revision for s in self.states.values() if s.status), default=0)

    def caught_up(self, state: MemberState) -> bool:
        leader = next((s for s in self.states.values() if s.member and s.member.id == self.leader_id), None)
        if state.status is None or leader is None or leader.status is None:
            return False
        return state.status.raft_applied_index + CATCH_UP_SLACK >= leader.status.raft_index


def stuck(pod: Obj | None) -> tuple[str, str] | None:
    """(reason, message) of a container waiting in a state it will not leave by itself, as the kubelet wrote them."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return str(waiting["reason"]), str(waiting.get("message") or "")
    return None


def owned(objs: Iterable[Obj], uid: str) -> list[Obj]:
    return [o for o in objs if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]


async def observe(pods: list[Obj], claims: list[Obj], tls: ClientTls | None = None) -> ClusterView:
    """Membership from the first member that answers, then Status from every member with an address, at once."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    view = ClusterView(
        pods=live,
        claims=claims,
        terminating={p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")},
        membership=None,
        tls=tls,
    )
    secure = tls is not None
    for pod in live:
        view.states[pod["metadata"]["name"]] = MemberState(pod["metadata"]["name"], pod=pod, secure=secure)
    for claim in claims:
        name = claim["metadata"]["name"]
        view.states.setdefault(name, MemberState(name, secure=secure)).claim = claim
    probes = {name: s.client_url for name, s in view.states.items() if s.client_url}
    results = await asyncio.gather(*(endpoint_status(url, tls) for url in probes.values()))
    for name, result in zip(probes, results, strict=True):
        view.states[name].status = result
    # Membership from the leader first, then members that see a leader: a member cut off from the cluster (or
    # one left over from before a rebuild) answers with its own stale view.
    ordered = sorted(
        (s for s in view.states.values() if s.client_url),
        key=lambda s: (not (s.status and s.status.leader == s.status.member_id), not (s.status and s.status.leader)),
    )
    view.membership = await member_list([s.client_url for s in ordered if s.client_url], tls)
    for member in view.membership or []:
        name = member.name or member_name_from_url(member)
        if name:
            view.states.setdefault(name, MemberState(name, secure=secure)).member = member
        else:
            view.unnamed.append(member)
    return view


def member_name_from_url(member: Member) -> str:
    """A learner that has not started has no name yet; its peer URL's host is ``<member>.<cluster>.<ns>.svc…``."""
    for url in member.peer_urls:
        host = urlparse(url).hostname or ""
        if host and not host[0].isdigit():
            return host.split(".")[0]
    return ""


async def member_list(urls: list[str], tls: ClientTls | None = None) -> list[Member] | None:
    for url in urls:
        with contextlib.suppress(EtcdError, OSError, TimeoutError):
            async with EtcdClient(url, timeout=PROBE_TIMEOUT_S, tls=tls) as client:
                return await client.member_list()
    return None


async def endpoint_status(url: str, tls: ClientTls | None = None) -> EndpointStatus | None:
    with contextlib.suppress(EtcdError, OSError, TimeoutError):
        async with EtcdClient(url, timeout=PROBE_TIMEOUT_S, tls=tls) as client:
            return await client.status()
    return None
