"""A client-side rate limit on API calls: a token bucket, as in client-go.

The official Python client has none, while kube-scheduler's client allows ``qps`` calls
per second on average with bursts of up to ``burst`` (50 and 100 by default in its
``clientConnection``). :class:`TokenBucket` gives the operator the same limit, so that a
comparison between the two measures scheduling, not who may talk to the API server more.
Tokens are reserved under a lock and waited for outside it, so concurrent callers are
served in the order they asked and nobody spins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved up; ``qps <= 0`` means no limit."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = max(burst, 1)
        self.clock = clock
        self.sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()
        #: Calls that had to wait, and the seconds they waited in all (for tests and logs).
        self.throttled = 0
        self.waited_s = 0.0

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
            if wait > 0:
                self.throttled += 1
                self.waited_s += wait
            return wait

    def acquire(self) -> None:
        """Block until a call may be made."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)
