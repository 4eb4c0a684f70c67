"""CrashLoopBackOff timing, as the kubelet does it.

The first restart of a container that exited is immediate; each further
restart waits 10 s doubling to 5 min.  A container that ran for 10 min
before exiting resets the back-off (upstream: ``backOffPeriod`` doubling with
``MaxContainerBackOff`` and a reset after twice the cap).
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_S = 10.0
MAX_S = 300.0
RESET_AFTER_S = 600.0


@dataclass
class CrashBackoff:
    """Per-container state: call ``next_delay`` each time the container exits."""

    initial_s: float = INITIAL_S
    max_s: float = MAX_S
    reset_after_s: float = RESET_AFTER_S
    _current: float = 0.0

    def next_delay(self, ran_for_s: float) -> float:
        """Seconds to wait before restarting a container that ran ``ran_for_s`` seconds."""
        if ran_for_s >= self.reset_after_s:
            self._current = 0.0
        if self._current == 0.0:
            self._current = self.initial_s
            return 0.0
        delay = self._current
        self._current = min(self._current * 2, self.max_s)
        return delay
