"""A key or key range in etcd's encoding, decoded once.

etcd encodes three shapes in ``(key, range_end)``: ``range_end == b""`` is the
single key, ``range_end == b"\\0"`` is every key >= ``key`` (so ``(b"\\0",
b"\\0")`` is the whole keyspace), anything else is ``[key, range_end)``.
``KeySpan`` holds the decoded shape so matching a key (watch fan-out) and
building SQL (the SQLite backend) never re-derive it.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.store.types import FROM_KEY


@dataclass(frozen=True, slots=True)
class KeySpan:
    """``end is None``: the single key ``start``; ``end == b""``: unbounded; else exclusive end."""

    start: bytes
    end: bytes | None

    @classmethod
    def of(cls, key: bytes, range_end: bytes = b"") -> KeySpan:
        if not range_end:
            return cls(key, None)
        if range_end == FROM_KEY:
            return cls(key, b"")
        return cls(key, range_end)

    @property
    def is_single(self) -> bool:
        return self.end is None

    @property
    def is_inverted(self) -> bool:
        """A bounded range whose end is not after its start: etcd silently matches nothing."""
        return bool(self.end) and self.end is not None and self.end <= self.start

    def contains(self, key: bytes) -> bool:
        end = self.end
        if end is None:
            return key == self.start
        return key >= self.start and (not end or key < end)

    @property
    def shape(self) -> str:
        """``single``, ``from`` or ``bounded``: the key for caching prepared SQL per shape."""
        if self.end is None:
            return "single"
        return "from" if not self.end else "bounded"

    @property
    def params(self) -> tuple[bytes, ...]:
        if self.end is None or not self.end:
            return (self.start,)
        return (self.start, self.end)


def span_sql(shape: str, column: str) -> str:
    """The WHERE fragment of a span ``shape`` over ``column`` (parameters from ``KeySpan.params``)."""
    if shape == "single":
        return f"{column} = ?"
    if shape == "from":
        return f"{column} >= ?"
    return f"{column} >= ? AND {column} < ?"
