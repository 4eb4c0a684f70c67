"""Latency summaries: nearest-rank percentiles over nanosecond samples, reported in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of already sorted samples."""
    if not ordered:
        return 0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of_ns(cls, samples: Sequence[int]) -> Latency:
        if not samples:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(samples)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 50) / 1e6,
            p99_ms=percentile(ordered, 99) / 1e6,
            max_ms=ordered[-1] / 1e6,
            mean_ms=sum(ordered) / len(ordered) / 1e6,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
