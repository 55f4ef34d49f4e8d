"""Limits for the few routes worth hammering: sign-in, password checks, token creation.

- Per address (``rate_limited``): a sliding window of attempts per IP and route; this stops
  one address from trying many accounts, or from minting tokens in a loop.
- Per account and address (``SignInThrottle.client_wait``): failed password checks for one
  user name from one address; past ``BEAMDESK_LOGIN_FAILURES_PER_CLIENT`` within
  ``BEAMDESK_LOGIN_FAILURE_WINDOW`` that address gets 429 for that name. Other addresses
  are not affected, so an attacker cannot lock the account's owner out.
- Per account (``slowdown``): past ``BEAMDESK_MAX_FAILED_LOGINS`` recent failures of a user
  name, from anywhere, each further check of that name waits a little before the password
  is verified (doubling, capped at ``BEAMDESK_LOGIN_MAX_DELAY`` seconds): online guessing
  slows down, the right password always works. A browser that signed in to that account
  before (``remember_device``: a signed cookie) has proven itself and does not wait.

All of it is keyed by the name typed, whether an account of that name exists or not, so
the answers tell nothing about which names exist. It is kept in memory: with several
server processes each has its own windows and counts, which is still a bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from beamdesk.errors import TooMany

DEFAULT_LIMIT = 20
DEFAULT_WINDOW_SECONDS = 60.0

_Key = TypeVar("_Key", str, tuple[str, str])  # an account name, or (name, address)


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


def too_many(wait: float, what: str = "Too many attempts from your address") -> TooMany:
    seconds = max(1, math.ceil(wait))
    return TooMany(
        f"{what}; try again in {seconds} seconds.", headers={"Retry-After": str(seconds)}
    )


def rate_limited(bucket: str) -> Callable[[Request], None]:
    """A dependency refusing more than the limit per IP for one bucket with 429 + Retry-After."""

    def check(request: Request) -> None:
        wait = limiter_of(request).hit(f"{bucket}:{client_ip(request)}")
        if wait > 0:
            raise too_many(wait)

    return check


# ------------------------------------------------------------------ password checks
FIRST_DELAY = 0.25  # seconds, at the first failure past the free ones; doubles after


def slowdown(failures: int, free: int, cap: float) -> float:
    """Seconds a password check of a name with ``failures`` recent failures waits."""
    if failures < free or cap <= 0:
        return 0.0
    return min(cap, FIRST_DELAY * 2 ** min(failures - free, 16))


class SignInThrottle:
    """Recent failed password checks, per user name and per (user name, address)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.clock = clock
        self.max_keys = max_keys
        self._accounts: dict[str, deque[float]] = {}
        self._clients: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._window = 0.0

    @staticmethod
    def _recent(hits: deque[float] | None, window: float, now: float) -> deque[float] | None:
        while hits and hits[0] <= now - window:
            hits.popleft()
        return hits

    def account_failures(self, username: str, window: float) -> int:
        with self._lock:
            hits = self._recent(self._accounts.get(username), window, self.clock())
            return len(hits) if hits else 0

    def client_wait(self, username: str, ip: str, window: float, limit: int) -> float:
        """0 if this address may check this name's password now, else seconds to wait."""
        now = self.clock()
        with self._lock:
            hits = self._recent(self._clients.get((username, ip)), window, now)
            if not hits or len(hits) < limit:
                return 0.0
            return hits[-limit] + window - now

    def failed(self, username: str, ip: str, window: float) -> None:
        now = self.clock()
        with self._lock:
            self._window = max(self._window, window)
            self._record(self._accounts, username, now)
            self._record(self._clients, (username, ip), now)

    def _record(self, table: dict[_Key, deque[float]], key: _Key, now: float) -> None:
        hits = table.pop(key, None) or deque(maxlen=1024)
        hits.append(now)
        table[key] = hits  # re-inserted: the dicts stay in order of last failure
        self._forget(table, now)

    def succeeded(self, username: str, ip: str) -> None:
        """The right password from this address: its own failures for the name are
        forgiven (the name's count is not: it is what slows guessing from elsewhere)."""
        with self._lock:
            self._clients.pop((username, ip), None)

    def _forget(self, table: dict[_Key, deque[float]], now: float) -> None:
        # Memory stays bounded by the names and addresses that failed recently; past
        # max_keys the oldest go first (a flood of made-up names forgets itself).
        if len(table) <= self.max_keys:
            return
        for key in [k for k, v in table.items() if not v or v[-1] <= now - self._window]:
            del table[key]
        while len(table) > self.max_keys:
            del table[next(iter(table))]


def throttle_of(request: Request) -> SignInThrottle:
    state = request.app.state
    if getattr(state, "sign_in_throttle", None) is None:
        state.sign_in_throttle = SignInThrottle()
    return state.sign_in_throttle


# A browser that signed in to an account keeps a signed note of it, for this long.
DEVICE_COOKIE = "beamdesk_signin"
DEVICE_SECONDS = 30 * 86400
_DEVICE_NAMES = 8  # accounts remembered per browser


def _device_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="beamdesk.signin.device")


def _name_tag(username: str) -> str:
    # Not the name itself: the cookie need not list who used a shared computer.
    return hashlib.sha256(username.encode()).hexdigest()[:20]


def _device_tags(request: Request, secret_key: str) -> list[str]:
    value = request.cookies.get(DEVICE_COOKIE, "")
    if not value or len(value) > 1000:
        return []
    try:
        tags = _device_serializer(secret_key).loads(value, max_age=DEVICE_SECONDS)
    except BadSignature:  # also SignatureExpired
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def proves(request: Request, secret_key: str, username: str) -> bool:
    """Has this browser signed in to ``username`` with its password recently?"""
    return _name_tag(username) in _device_tags(request, secret_key)


def remember_device(request: Request, response: Response, username: str) -> None:
    """After a successful password sign-in: this browser has proven itself for the name."""
    settings = request.app.state.settings
    tag = _name_tag(username)
    tags = [tag] + [t for t in _device_tags(request, settings.secret_key) if t != tag]
    response.set_cookie(
        DEVICE_COOKIE,
        str(_device_serializer(settings.secret_key).dumps(tags[:_DEVICE_NAMES])),
        max_age=DEVICE_SECONDS,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
    )


@dataclass(frozen=True)
class PasswordAttempt:
    """One password check let through; the route reports how it went."""

    throttle: SignInThrottle
    username: str
    ip: str
    window: float

    def failed(self) -> None:
        self.throttle.failed(self.username, self.ip, self.window)

    def succeeded(self) -> None:
        self.throttle.succeeded(self.username, self.ip)


async def throttle_password_check(
    request: Request, username: str, *, trust_device: bool = True
) -> PasswordAttempt:
    """Before checking ``username``'s password: refuse this address (429) if it failed
    too often for the name, else wait as long as the name's recent failures ask."""
    settings = request.app.state.settings
    throttle = throttle_of(request)
    ip = client_ip(request)
    window = float(settings.auth.login_failure_window)
    wait = throttle.client_wait(username, ip, window, settings.auth.login_failures_per_client)
    if wait > 0:
        raise too_many(wait, "Too many failed sign-ins for this account from your address")
    if not (trust_device and proves(request, settings.secret_key, username)):
        failures = throttle.account_failures(username, window)
        delay = slowdown(failures, settings.auth.max_failed_logins, settings.auth.login_max_delay)
        if delay > 0:
            await asyncio.sleep(delay)  # on the event loop: a waiting attempt holds no thread
    return PasswordAttempt(throttle, username, ip, window)


async def sign_in_attempt(request: Request) -> PasswordAttempt:
    """Dependency of the sign-in form: the name typed, throttled."""
    form = await request.form()
    value = form.get("username", "")
    username = value.strip()[:64] if isinstance(value, str) else ""
    return await throttle_password_check(request, username)
