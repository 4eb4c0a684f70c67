"""Auditing: an audit.k8s.io/v1 Policy, the Events it asks for, and a rotated log of them.

Follows k8s.io/apiserver's ``pkg/audit``:

* **Policy** (``--audit-policy-file``): rules are tried in order and the first
  that matches gives the level (``policy/checker.go``); no match is ``None``.
  A rule matches when every list it sets matches: ``users``, ``userGroups``
  (any group), ``verbs``; ``namespaces``/``resources`` only match resource
  requests (``group`` equal, ``resources`` entries ``pods``, ``pods/log``,
  ``*``, ``*/status``, ``pods/*``, narrowed by ``resourceNames``);
  ``nonResourceURLs`` only match other paths (``*`` or a trailing ``*`` prefix).
  A rule's ``omitStages`` add to the policy's.
* **Events**: ``RequestReceived`` (after authentication, before anything is
  decoded) and ``ResponseComplete`` (with ``responseStatus``,
  ``requestObject`` at ``Request`` and above for JSON-object bodies,
  ``responseObject`` at ``RequestResponse`` only).  Which resources are
  logged at which level — secrets included — is the policy's call, as upstream.
  ``user`` is who authenticated; an impersonated user is ``impersonatedUser``,
  known from ResponseComplete on (upstream sets it after RequestReceived too).
* **Log** (``--audit-log-path``, ``-`` for stdout): one JSON event a line,
  rotated by size (``--audit-log-maxsize`` MiB) keeping ``--audit-log-maxbackup``
  old files (``audit.log.1`` newest).  Writes happen on a thread behind a
  bounded queue, so the event loop never waits on the disk; when the queue is
  full the event is dropped and counted (upstream's blocking log backend would
  stall requests instead).  ``close()`` drains the queue.

Pure apart from ``AuditLogWriter``: matching and event building do no I/O.
"""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import queue
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml

from skiff.apiserver.auth import UserInfo
from skiff.apiserver.request_info import RequestInfo

log = logging.getLogger(__name__)

Level = Literal["None", "Metadata", "Request", "RequestResponse"]
LEVELS: tuple[Level, ...] = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSION = "audit.k8s.io/v1"
MIB = 1024 * 1024
#: Bound on events waiting for the writer thread.
QUEUE_LIMIT = 10_000
#: RotatingFileHandler needs a number; --audit-log-maxbackup 0 (upstream: keep all) keeps this many.
UNLIMITED_BACKUPS = 9999


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: Level
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a rule looks at: the user, the verb (Kubernetes' or the lowercase HTTP method) and the target."""

    user: UserInfo | None
    verb: str
    path: str
    info: RequestInfo | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...] = ()
    omit_stages: frozenset[str] = frozenset()

    def evaluate(self, attrs: RequestAttributes) -> tuple[Level, frozenset[str]]:
        """The level of the first matching rule (``None`` if none) and the stages to omit."""
        for rule in self.rules:
            if rule_matches(rule, attrs):
                return rule.level, self.omit_stages | rule.omit_stages
        return "None", self.omit_stages


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{key} must be a list of strings")
    return tuple(value)


def _stages(raw: Mapping[str, Any]) -> frozenset[str]:
    stages = _strings(raw, "omitStages")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise PolicyError(f"omitStages: unknown stage {unknown[0]!r}")
    return frozenset(stages)


def parse_policy(text: str) -> Policy:
    """An audit.k8s.io/v1 Policy from YAML or JSON text; PolicyError names what is wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"not YAML: {err}") from err
    if not isinstance(doc, dict) or doc.get("kind") != "Policy" or doc.get("apiVersion") != API_VERSION:
        raise PolicyError(f"want kind Policy, apiVersion {API_VERSION}")
    rules = []
    for i, raw in enumerate(doc.get("rules") or []):
        if not isinstance(raw, dict):
            raise PolicyError(f"rules[{i}] must be an object")
        level = raw.get("level")
        if level not in LEVELS:
            raise PolicyError(f"rules[{i}].level: {level!r} is not one of {', '.join(LEVELS)}")
        try:
            groups = tuple(
                GroupResources(str(g.get("group", "")), _strings(g, "resources"), _strings(g, "resourceNames"))
                for g in raw.get("resources") or []
            )
            rule = PolicyRule(
                level=level,
                users=_strings(raw, "users"),
                user_groups=_strings(raw, "userGroups"),
                verbs=_strings(raw, "verbs"),
                resources=groups,
                namespaces=_strings(raw, "namespaces"),
                non_resource_urls=_strings(raw, "nonResourceURLs"),
                omit_stages=_stages(raw),
            )
        except (PolicyError, AttributeError) as err:
            raise PolicyError(f"rules[{i}]: {err}") from err
        if (rule.resources or rule.namespaces) and rule.non_resource_urls:
            raise PolicyError(f"rules[{i}]: resources/namespaces and nonResourceURLs are exclusive")
        rules.append(rule)
    if not rules:
        raise PolicyError("a policy needs at least one rule")
    return Policy(tuple(rules), _stages(doc))


def load_policy(path: Path) -> Policy:
    return parse_policy(path.read_text())


def rule_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    """upstream ``ruleMatches``."""
    user = attrs.user
    if rule.users and (user is None or user.name not in rule.users):
        return False
    if rule.user_groups and (user is None or not set(user.groups) & set(rule.user_groups)):
        return False
    if rule.verbs and attrs.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, attrs.info)
    if rule.non_resource_urls:
        return attrs.info is None and any(_path_matches(attrs.path, spec) for spec in rule.non_resource_urls)
    return True


def _path_matches(path: str, spec: str) -> bool:
    return spec == "*" or spec == path or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


def _matches_resource(rule: PolicyRule, info: RequestInfo | None) -> bool:
    if info is None:
        return False
    if rule.namespaces and info.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    for gr in rule.resources:
        if gr.group != info.group:
            continue
        if not gr.resources:
            return True
        if gr.resource_names and info.name not in gr.resource_names:
            continue
        for res in gr.resources:
            if res in (combined, "*"):
                return True
            if info.subresource and res.startswith("*/") and res[2:] == info.subresource:
                return True
            if res.endswith("/*") and res[:-2] == info.resource:
                return True
    return False


def timestamp(when: datetime.datetime) -> str:
    """RFC 3339 with microseconds, UTC (upstream's MicroTime)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AuditRecord:
    """One request's audit state, built up by the HTTP middleware."""

    audit_id: str
    method: str
    request_uri: str
    verb: str
    path: str
    info: RequestInfo | None
    source_ips: tuple[str, ...]
    user_agent: str
    received: datetime.datetime
    user: UserInfo | None = None
    #: Who ``user`` acts as (Impersonate-* headers, ``apiserver.impersonation``); the policy still matches ``user``.
    impersonated_user: UserInfo | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def attributes(self) -> RequestAttributes:
        return RequestAttributes(self.user, self.verb, self.path, self.info)


def build_event(
    record: AuditRecord,
    level: Level,
    stage: str,
    stage_time: datetime.datetime,
    *,
    code: int | None = None,
    status: Mapping[str, Any] | None = None,
    request_object: Any = None,
    response_object: Any = None,
) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event, fields in kube-apiserver's order; objects only where ``level`` allows."""
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": API_VERSION,
        "level": level,
        "auditID": record.audit_id,
        "stage": stage,
        "requestURI": record.request_uri,
        "verb": record.verb,
        "user": record.user.to_user_info() if record.user is not None else {},
    }
    if record.impersonated_user is not None:
        event["impersonatedUser"] = record.impersonated_user.to_user_info()
    event["sourceIPs"] = list(record.source_ips)
    if record.user_agent:
        event["userAgent"] = record.user_agent
    if record.info is not None:
        event["objectRef"] = object_ref(record.info)
    if code is not None:
        response_status: dict[str, Any] = {"metadata": {}, "code": code}
        if status is not None:
            for key in ("status", "message", "reason", "details"):
                if key in status:
                    response_status[key] = status[key]
        event["responseStatus"] = response_status
    if level in ("Request", "RequestResponse") and isinstance(request_object, dict):
        event["requestObject"] = request_object
    if level == "RequestResponse" and isinstance(response_object, dict):
        event["responseObject"] = response_object
    event["requestReceivedTimestamp"] = timestamp(record.received)
    event["stageTimestamp"] = timestamp(stage_time)
    if record.annotations:
        event["annotations"] = dict(record.annotations)
    return event


def object_ref(info: RequestInfo) -> dict[str, str]:
    ref = {"resource": info.resource}
    if info.namespace:
        ref["namespace"] = info.namespace
    if info.name:
        ref["name"] = info.name
    if info.group:
        ref["apiGroup"] = info.group
    ref["apiVersion"] = info.version
    if info.subresource:
        ref["subresource"] = info.subresource
    return ref


class AuditLogWriter:
    """Events as JSON lines to a size-rotated file (or stdout for ``-``), written on a thread."""

    def __init__(self, path: str, max_size_mib: float = 100, max_backups: int = 5) -> None:
        handler: logging.Handler
        if path == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # lumberjack (upstream's rotator) reads maxsize 0 as its default, 100 MiB.
            max_bytes = int((max_size_mib or 100) * MIB)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max(max_bytes, 1), backupCount=max_backups or UNLIMITED_BACKUPS, encoding="utf-8"
            )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LIMIT)
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._listener.start()
        self._closed = False
        self.dropped = 0

    def write(self, event: Mapping[str, Any]) -> None:
        """Queue one event; never blocks (a full queue drops it, counted in ``dropped``)."""
        if self._closed:
            return
        record = logging.makeLogRecord({"msg": orjson.dumps(event).decode(), "levelno": logging.INFO})
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit log queue full: %d events dropped", self.dropped)

    def close(self) -> None:
        """Write what is queued and close the file (blocking: call through a thread from async code)."""
        if self._closed:
            return
        self._closed = True
        self._listener.stop()
        self._handler.close()


@dataclass
class Auditor:
    """A policy and where its events go; the HTTP middleware asks it what to log."""

    policy: Policy
    writer: AuditLogWriter

    def level_of(self, record: AuditRecord) -> tuple[Level, frozenset[str]]:
        return self.policy.evaluate(record.attributes())

    def emit(self, event: Mapping[str, Any]) -> None:
        self.writer.write(event)

    def close(self) -> None:
        self.writer.close()


DEFAULT_POLICY = """\
# Written by skiff up; edit freely, it is read at start.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"]
  - level: Metadata
"""


def ensure_default_policy(path: Path) -> Path:
    """Write ``DEFAULT_POLICY`` to ``path`` unless a policy is already there (blocking)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEFAULT_POLICY)
    return path


def open_auditor(policy_file: Path, log_path: str, max_size_mib: float, max_backups: int) -> Auditor:
    """Load the policy and open the log (blocking)."""
    return Auditor(load_policy(policy_file), AuditLogWriter(log_path, max_size_mib, max_backups))


def default_log_path(data_dir: Path) -> Path:
    return data_dir / "logs" / "audit.log"


def json_object(body: bytes) -> dict[str, Any] | None:
    """The decoded body if it is a JSON object, else None (YAML, protobuf and others are not logged)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
