"""A token bucket per client, in this replica's memory.

Each replica limits on its own, so N replicas let a client through at up to N times the rate:
good enough to stop a runaway script or a password guesser, and needs no shared store.
"""

from __future__ import annotations

import time

# Above this many clients, buckets that have filled up again are forgotten (a full bucket is
# the same as no bucket), so a flood of distinct clients cannot grow memory without bound.
MAX_TRACKED = 100_000


class RateLimiter:
    """Buckets of `burst` requests per client, refilled at `per_second`."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, when)

    def wait_seconds(self, key: str) -> float:
        """Take one request from the key's bucket: 0 if allowed, else seconds until it would be."""
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
        if key not in self._buckets and len(self._buckets) >= MAX_TRACKED:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        refill = self.per_second
        self._buckets = {
            k: (tokens, then)
            for k, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * refill < self.burst
        }
