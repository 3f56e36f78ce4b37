"""Exponential backoff with jitter, for retrying failed reconciles and etcd reconnects."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 60.0
    factor: float = 2.0
    # Spread retries of many agents (1,000 per process in the benchmark) so they do not hit etcd in step.
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return max(0.0, raw * (1.0 + random.uniform(-self.jitter, self.jitter)))
