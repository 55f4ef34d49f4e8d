"""A flood of sign-in attempts (from many addresses, so no per-address limit applies) must not
take the server's memory: each argon2id check needs 64 MiB, and only a few run at once.
The peak is read from ``/proc/self/status`` (VmHWM, reset through ``clear_refs``)."""

from __future__ import annotations

import threading
from pathlib import Path

from argon2 import PasswordHasher

from beamdesk.portal.auth import ARGON2_AT_ONCE, hash_password, verify_password

MiB = 1 << 20
ARGON2_BYTES = PasswordHasher().memory_cost * 1024  # 64 MiB, RFC 9106's low-memory profile


def _kib(field: str) -> int:
    line = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field)
    )
    return int(line.split()[1])


def test_a_flood_of_password_checks_holds_bounded_memory() -> None:
    stored = hash_password("the right passphrase")
    barrier = threading.Barrier(24)
    answers: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        answers.append(verify_password(stored, "a wrong guess, again"))

    threads = [threading.Thread(target=attempt) for _ in range(24)]
    Path("/proc/self/clear_refs").write_text("5")
    before = _kib("VmRSS")
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    growth = (_kib("VmHWM") - before) * 1024
    print(f"24 parallel checks: peak +{growth / MiB:.0f} MiB")
    assert answers == [False] * 24
    # 24 at once would touch 24 × 64 MiB = 1.5 GiB; the slots allow ARGON2_AT_ONCE of them.
    assert growth <= (ARGON2_AT_ONCE + 1) * ARGON2_BYTES, f"+{growth / MiB:.0f} MiB"
    assert verify_password(stored, "the right passphrase")
