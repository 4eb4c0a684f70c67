"""A linearizability checker for histories of single-key store operations.

The model is one register per key whose state is the key's ``(value,
mod_revision)`` or absent.  Operations are the API server's: a read (``get``),
compare-and-swap on the mod revision (``update``), create-if-absent
(``create``), and unconditional ``delete``; each is recorded with its
invocation and response times (``time.monotonic_ns``) and what it returned.

Linearizability is local (Herlihy & Wing), so each key is checked on its own.
The search is Wing & Gong's: repeatedly pick an operation that may take
effect next — one invoked before every pending operation's response — apply
it to the model, backtrack when the model rejects it; memoised on (set of
operations linearised, register state) as in Lowe's and Porcupine's
refinement, plus one complete reduction (``_absorb_state_preserving``).
An operation whose outcome is unknown (the client saw an error) has no
response: it may take effect at any point after its invocation, or never.
Its write revision is then unknown and matches whatever a later observer sees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    READ = "read"
    CAS = "cas"
    CREATE = "create"
    DELETE = "delete"


class Outcome(Enum):
    OK = "ok"
    CONFLICT = "conflict"  # CAS lost; ``observed`` is the kv that won
    NOT_FOUND = "not_found"
    EXISTS = "exists"
    UNKNOWN = "unknown"  # an error: it may or may not have taken effect


@dataclass(frozen=True)
class Register:
    """A present key: its value and mod revision (None when written by an op whose outcome was lost)."""

    value: bytes
    mod_revision: int | None


State = Register | None


@dataclass(frozen=True)
class Operation:
    key: bytes
    kind: Kind
    call_ns: int
    return_ns: int | None  # None when the outcome is unknown
    outcome: Outcome
    expected_mod_revision: int = 0  # CAS input
    value: bytes = b""  # CAS/create input
    observed: State = None  # read result, CAS conflict's current kv, delete's deleted kv
    revision: int = 0  # the write's revision when OK
    client: int = 0

    def __post_init__(self) -> None:
        assert (self.return_ns is None) == (self.outcome is Outcome.UNKNOWN), self


def _matches(state: State, observed: State) -> Register | bool | None:
    """``observed`` equals ``state`` (an unknown revision matches any): the refined state, or False."""
    if state is None or observed is None:
        return None if state is None and observed is None else False
    if state.value != observed.value:
        return False
    if state.mod_revision is None:
        return observed
    return state if state.mod_revision == observed.mod_revision else False


def _newer(state: State, revision: int) -> bool:
    """Revisions grow: a write at ``revision`` must follow the one that made ``state``."""
    return state is None or state.mod_revision is None or revision > state.mod_revision


def step(state: State, op: Operation) -> list[State]:
    """Every state ``op`` may leave the register in when it takes effect in ``state`` (none: illegal)."""
    if op.kind is Kind.READ:
        refined = _matches(state, op.observed)
        return [] if refined is False else [refined]  # type: ignore[list-item]
    if op.kind is Kind.CAS:
        holds = state is not None and state.mod_revision in (op.expected_mod_revision, None)
        if op.outcome is Outcome.OK:
            return [Register(op.value, op.revision)] if holds and _newer(state, op.revision) else []
        if op.outcome is Outcome.UNKNOWN:
            return [Register(op.value, None)] if holds else []
        if op.outcome is Outcome.NOT_FOUND:
            return [None] if state is None else []
        if op.outcome is Outcome.CONFLICT:
            if state is None or state.mod_revision == op.expected_mod_revision:
                return []
            refined = _matches(state, op.observed)
            return [] if refined is False else [refined]  # type: ignore[list-item]
    if op.kind is Kind.CREATE:
        if op.outcome is Outcome.OK:
            return [Register(op.value, op.revision)] if state is None and _newer(state, op.revision) else []
        if op.outcome is Outcome.UNKNOWN:
            return [Register(op.value, None)] if state is None else []
        if op.outcome is Outcome.EXISTS:
            return [state] if state is not None else []
    if op.kind is Kind.DELETE:
        if op.outcome is Outcome.OK:
            present = _matches(state, op.observed) not in (False, None)
            return [None] if present and _newer(state, op.revision) else []
        if op.outcome is Outcome.UNKNOWN:
            return [None] if state is not None else []
        if op.outcome is Outcome.NOT_FOUND:
            return [None] if state is None else []
    raise ValueError(f"no model for {op.kind} with outcome {op.outcome}")


def linearizable(ops: Sequence[Operation], initial: State = None) -> bool:
    """Whether the single-key history ``ops`` has a linearisation starting from ``initial``."""
    order = sorted(range(len(ops)), key=lambda i: ops[i].call_ns)
    must = 0  # every op with a known outcome must be linearised
    for i, op in enumerate(ops):
        if op.return_ns is not None:
            must |= 1 << i
    stack: list[tuple[int, State]] = [(0, initial)]
    visited: set[tuple[int, State]] = set()
    while stack:
        done, state = stack.pop()
        done = _absorb_state_preserving(ops, order, done, state)
        if done & must == must:
            return True
        if (done, state) in visited:
            continue
        visited.add((done, state))
        for i in reversed(_candidates(ops, order, done)):  # earliest invocation explored first
            for after in step(state, ops[i]):
                stack.append((done | 1 << i, after))
    return False


def _candidates(ops: Sequence[Operation], order: list[int], done: int) -> list[int]:
    """Pending ops that may take effect next: invoked before every pending op's response."""
    pending = [i for i in order if not done >> i & 1]
    returns = [ops[i].return_ns for i in pending if ops[i].return_ns is not None]
    if not returns:
        return pending
    deadline = min(returns)
    return [i for i in pending if ops[i].call_ns <= deadline]


def _absorb_state_preserving(ops: Sequence[Operation], order: list[int], done: int, state: State) -> int:
    """Linearise, without branching, every candidate that is legal in ``state`` and leaves it unchanged.

    Complete, not a heuristic: such an op (a read, a failed write) placed later
    in some linearisation can be moved to the front — it is legal here, it
    changes nothing for the ops it jumps over, and removing it from the
    pending set only relaxes their real-time constraints.  This keeps wide
    windows of concurrent reads from exploding the search.
    """
    while True:
        absorbed = done
        for i in _candidates(ops, order, done):
            if step(state, ops[i]) == [state]:
                absorbed |= 1 << i
        if absorbed == done:
            return done
        done = absorbed


def non_linearizable_keys(ops: Iterable[Operation]) -> list[bytes]:
    """The keys whose histories (every key starting absent) are not linearizable."""
    by_key: dict[bytes, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return sorted(key for key, key_ops in by_key.items() if not linearizable(key_ops))
