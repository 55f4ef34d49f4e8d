"""A per-IP sliding-window limit for the few routes worth hammering: sign-in and token creation.

Account lock-out (``portal.auth.authenticate``) stops guessing one account's password; this
stops one address from trying many accounts, or from minting tokens in a loop. It is kept in
memory: with several server processes each has its own window, which is still a bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

from beamdesk.web.problems import Problem

DEFAULT_LIMIT = 20
DEFAULT_WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    """At most ``limit`` hits per key within any ``window`` seconds."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Record a hit; 0 if allowed, else the seconds until the oldest hit leaves the window.

        A refused hit is not recorded, so a client that waits as told gets through.
        """
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window - now
            hits.append(now)
            self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        # Keeps memory bounded by the number of recently active addresses.
        if len(self._hits) > 10_000:
            for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                del self._hits[key]


def client_ip(request: Request) -> str:
    """The peer address; behind a reverse proxy, run uvicorn with --proxy-headers."""
    return request.client.host if request.client else "unknown"


def limiter_of(request: Request) -> SlidingWindowLimiter:
    """The app's limiter, created on first use; tests may put a smaller one in app.state."""
    state = request.app.state
    if getattr(state, "rate_limiter", None) is None:
        state.rate_limiter = SlidingWindowLimiter()
    return state.rate_limiter


def rate_limited(bucket: str) -> Callable[[Request], None]:
    """A dependency refusing more than the limit per IP for one bucket with 429 + Retry-After."""

    def check(request: Request) -> None:
        wait = limiter_of(request).hit(f"{bucket}:{client_ip(request)}")
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            problem = Problem(
                429, f"Too many attempts from your address; try again in {seconds} seconds."
            )
            problem.headers = {"Retry-After": str(seconds)}
            raise problem

    return check
